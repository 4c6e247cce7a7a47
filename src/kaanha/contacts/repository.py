"""Contact queries, including substring search served by an index on each engine."""

from __future__ import annotations

from collections import defaultdict

from sqlalchemy import Boolean, ColumnElement, Select, TextClause, delete, func, or_, select, text

from kaanha.errors import NotFound
from kaanha.kit.phone import phone_search_digits
from kaanha.kit.repository import TenantRepository
from kaanha.models import Contact, ContactTag


class ContactNotFound(NotFound):
    code = "contact_not_found"


# FTS5's trigram tokenizer needs three characters; shorter searches fall back to LIKE.
_TRIGRAM = 3


def _like_pattern(value: str) -> str:
    escaped = value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def _fts_phrase(value: str) -> str:
    return '"' + value.replace('"', '""') + '"'


class ContactRepository(TenantRepository[Contact]):
    model = Contact
    not_found = ContactNotFound
    noun = "Contact"

    async def find_by_phone(self, phone: str) -> Contact | None:
        result: Contact | None = await self.session.scalar(self.select().where(Contact.phone == phone))
        return result

    def listing(self, *, search: str | None, tag: str | None) -> Select[Contact]:
        query = self.select(narrower_filter_follows=bool(search and len(search) >= _TRIGRAM))
        if tag:
            query = query.where(
                Contact.id.in_(
                    select(ContactTag.contact_id).where(
                        ContactTag.organization_id == self.organization_id, ContactTag.tag == tag
                    )
                )
            )
        if search:
            query = query.where(self._search_condition(search))
        return query.order_by(Contact.created_at.desc(), Contact.id.desc())

    def _search_condition(self, search: str) -> ColumnElement[bool] | TextClause:
        """Name or phone contains `search`, case-insensitively; digits also match a formatted phone."""
        digits = phone_search_digits(search)
        if self._dialect() == "sqlite" and len(search) >= _TRIGRAM:
            phrases = [_fts_phrase(search)]
            if digits and digits != search and len(digits) >= _TRIGRAM:
                phrases.append(_fts_phrase(digits))
            return text(
                "contacts.rowid IN (SELECT rowid FROM contacts_fts WHERE contacts_fts MATCH :phrase)"
            ).bindparams(phrase=" OR ".join(phrases))
        # On PostgreSQL these LIKEs are answered by the trigram GIN indexes of the first migration.
        conditions = [
            func.lower(Contact.name).like(_like_pattern(search.lower()), escape="\\"),
            Contact.phone.like(_like_pattern(search), escape="\\"),
        ]
        if digits:
            conditions.append(Contact.phone.like(_like_pattern(digits), escape="\\"))
        return or_(*conditions)

    async def tags_for(self, contact_ids: list[str]) -> dict[str, list[str]]:
        """Tags of many contacts in one query (never one query per contact)."""
        if not contact_ids:
            return {}
        tenant: ColumnElement[bool] = ContactTag.organization_id == self.organization_id
        if self._dialect() == "sqlite":
            # Without ANALYZE statistics SQLite takes the (organization_id, tag) index and reads every tag
            # of the organization; likely() marks that filter as unselective, so the key on contact_id is used.
            tenant = func.likely(tenant, type_=Boolean)
        rows = await self.session.execute(
            select(ContactTag.contact_id, ContactTag.tag)
            .where(tenant, ContactTag.contact_id.in_(contact_ids))
            .order_by(ContactTag.tag)
        )
        tags: dict[str, list[str]] = defaultdict(list)
        for contact_id, tag in rows:
            tags[contact_id].append(tag)
        return tags

    async def set_tags(self, contact_id: str, tags: list[str]) -> None:
        await self.session.execute(
            delete(ContactTag).where(
                ContactTag.organization_id == self.organization_id, ContactTag.contact_id == contact_id
            )
        )
        for tag in tags:
            self.session.add(ContactTag(organization_id=self.organization_id, contact_id=contact_id, tag=tag))
        await self.session.flush()
