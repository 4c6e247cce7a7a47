"""Marketing consent: every change of a contact's opt-in, the keywords customers write, who may get marketing."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from kaanha.consent import keywords
from kaanha.consent.repository import ConsentChangeRepository
from kaanha.consent.schemas import ConsentChangeOut, ConsentSource, OptInSettings, OptInSettingsUpdate
from kaanha.contacts.repository import ContactRepository
from kaanha.contacts.schemas import contact_out
from kaanha.errors import InvalidRequest
from kaanha.events import types as event_types
from kaanha.events.service import emit
from kaanha.kit.clock import now
from kaanha.kit.ids import new_id
from kaanha.kit.pagination import Page, PageRequest
from kaanha.models import ConsentChange, Contact, Organization
from kaanha.organizations.repository import get_organization

NOT_OPTED_IN = "not_opted_in"
OPTED_OUT = "opted_out"
# WhatsApp stamps messages in whole seconds: one stamped T was written somewhere in [T, T + 1s).
_TIMESTAMP_RESOLUTION = timedelta(seconds=1)
_HOW = {
    "api": "through the API",
    "keyword": "by replying with an opt-out keyword",
    "import": "in an import",
    "dashboard": "in the dashboard",
}


class ContactNotOptedIn(InvalidRequest):
    code = "contact_not_opted_in"


class ContactOptedOut(InvalidRequest):
    code = "contact_opted_out"


async def set_opt_in(
    session: AsyncSession,
    *,
    contact: Contact,
    opted_in: bool,
    source: ConsentSource,
    detail: str | None = None,
    at: datetime | None = None,
    announce: bool = True,
) -> bool:
    """Record that `contact` opted in or out: the contact, a history row and `contact.updated`, together.

    The one place opt-in changes. False, changing nothing, when the contact is in that state already;
    opting out a contact who never opted in does count: they said no, and are "opted out" from then on.
    `at` is when it happened (a keyword's message time), now by default. `announce=False` leaves the
    event to a caller that emits one for a wider change (a contact being created or patched).
    """
    if contact.opted_in == opted_in and (opted_in or contact.opted_in_changed_at is not None):
        return False
    moment = at or now()
    if contact.opted_in_changed_at is not None and moment < contact.opted_in_changed_at:
        # A keyword stamped in the same second as the last change (WhatsApp's times are whole seconds)
        # is the newer of the two: the history keeps its order.
        moment = contact.opted_in_changed_at
    contact.opted_in = opted_in
    contact.opted_in_changed_at = moment
    contact.opted_in_source = source
    if announce:  # otherwise the caller's wider change sets the contact's updatedAt
        contact.updated_at = now()
    ConsentChangeRepository(session, contact.organization_id).add(
        ConsentChange(
            id=new_id("cns"),
            contact_id=contact.id,
            opted_in=opted_in,
            source=source,
            detail=detail[:200] if detail else None,
            created_at=moment,
        )
    )
    await session.flush()
    if announce:
        await _announce_updated(session, contact)
    return True


async def _announce_updated(session: AsyncSession, contact: Contact) -> None:
    tags = await ContactRepository(session, contact.organization_id).tags_for([contact.id])
    data = contact_out(contact, tags.get(contact.id, []))
    await emit(session, organization_id=contact.organization_id, type=event_types.CONTACT_UPDATED, data=data)


def marketing_block_reason(contact: Contact | None) -> str | None:
    """Why a MARKETING template can't go to `contact`: "not_opted_in", "opted_out", or None when it can.

    Opted out is no after a recorded change (consent withdrawn, or the customer's own STOP); a contact
    never asked, or not a contact yet, is not opted in.
    """
    if contact is not None and contact.opted_in:
        return None
    if contact is None or contact.opted_in_changed_at is None:
        return NOT_OPTED_IN
    return OPTED_OUT


def require_marketing_consent(contact: Contact | None, *, phone: str) -> None:
    """Refuse a MARKETING template to someone who has not opted in: WhatsApp's rule, and the customer's wish."""
    reason = marketing_block_reason(contact)
    if reason is None:
        return
    if reason == OPTED_OUT and contact is not None and contact.opted_in_changed_at is not None:
        when = contact.opted_in_changed_at.isoformat(timespec="seconds").replace("+00:00", "Z")
        how = _HOW.get(contact.opted_in_source or "", "")
        raise ContactOptedOut(
            f"{phone} opted out of marketing messages at {when} {how}".rstrip()
            + ". MARKETING templates can't be sent to them until they opt in again (they can reply START); "
            "UTILITY and AUTHENTICATION templates still can be."
        )
    record = (
        f'PATCH /contacts/{contact.id} with {{"optedIn": true}}'
        if contact is not None
        else f'POST /contacts with {{"phone": "{phone}", "optedIn": true}}'
    )
    raise ContactNotOptedIn(
        f"{phone} has not opted in to marketing messages, so WhatsApp does not allow MARKETING templates to "
        f"them. Once they agree, record their consent ({record}), or send a UTILITY template."
    )


async def apply_keyword(
    session: AsyncSession, *, contact: Contact, message_type: str, content: dict[str, Any], sent_at: datetime
) -> str | None:
    """Apply the opt-out or opt-in keyword a customer's message is, if it is one; the confirmation to send.

    A keyword repeating the contact's state changes nothing (no history row, no event) but is confirmed
    again, so the customer knows it worked. None for anything else, and for a keyword older than the
    contact's last consent change: webhooks arrive out of order, and the later word must win.
    """
    found = await _keyword_in(
        session, organization_id=contact.organization_id, message_type=message_type, content=content
    )
    if found is None:
        return None
    keyword, organization = found
    # Read again under the row lock: the same customer's other keyword may have committed a moment ago.
    await session.refresh(contact, ["opted_in", "opted_in_changed_at", "opted_in_source"], with_for_update=True)
    if _superseded(contact, sent_at):
        return None
    await set_opt_in(
        session, contact=contact, opted_in=keyword.opted_in, source="keyword", detail=keyword.written, at=sent_at
    )
    return confirmation(organization, opted_in=keyword.opted_in)


async def _keyword_in(
    session: AsyncSession, *, organization_id: str, message_type: str, content: dict[str, Any]
) -> tuple[keywords.Keyword, Organization] | None:
    visible, hidden = keywords.candidates(message_type, content)
    if not any(keywords.could_be_keyword(text) for text in visible + hidden):
        return None  # most messages: told apart without loading the organization
    organization = await get_organization(session, organization_id)
    found = keywords.find(
        visible,
        hidden,
        opt_out=keywords.opt_out_words(organization.opt_out_keywords or []),
        opt_in=keywords.opt_in_words(organization.opt_in_keywords or []),
    )
    return (found, organization) if found else None


def _superseded(contact: Contact, sent_at: datetime) -> bool:
    """The contact's consent changed after this message was written (its webhook came late)."""
    changed_at = contact.opted_in_changed_at
    return changed_at is not None and sent_at + _TIMESTAMP_RESOLUTION <= changed_at


def confirmation(organization: Organization, *, opted_in: bool) -> str:
    if opted_in:
        return organization.opt_in_reply or keywords.DEFAULT_OPT_IN_REPLY
    return organization.opt_out_reply or keywords.DEFAULT_OPT_OUT_REPLY


async def opt_in_history(
    session: AsyncSession, *, organization_id: str, contact_id: str, page: PageRequest
) -> Page[ConsentChangeOut]:
    """A contact's opt-in changes, newest first; another organization's contact is not found."""
    await ContactRepository(session, organization_id).get(contact_id)
    repository = ConsentChangeRepository(session, organization_id)
    changes, total = await repository.page(repository.history(contact_id), page)
    return Page.of([ConsentChangeOut.model_validate(change) for change in changes], request=page, total=total)


async def get_opt_in_settings(session: AsyncSession, *, organization_id: str) -> OptInSettings:
    return _settings_out(await get_organization(session, organization_id))


async def update_opt_in_settings(
    session: AsyncSession, *, organization_id: str, data: OptInSettingsUpdate
) -> OptInSettings:
    """Replace the organization's own keywords and replies (checked by OptInSettingsUpdate already)."""
    organization = await get_organization(session, organization_id)
    organization.opt_out_keywords = list(data.opt_out_keywords)
    organization.opt_in_keywords = list(data.opt_in_keywords)
    organization.opt_out_reply = data.opt_out_reply
    organization.opt_in_reply = data.opt_in_reply
    await session.flush()
    return _settings_out(organization)


def _settings_out(organization: Organization) -> OptInSettings:
    return OptInSettings(
        opt_out_keywords=list(organization.opt_out_keywords or []),
        opt_in_keywords=list(organization.opt_in_keywords or []),
        opt_out_reply=organization.opt_out_reply,
        opt_in_reply=organization.opt_in_reply,
    )
