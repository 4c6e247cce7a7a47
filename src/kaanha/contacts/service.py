"""Contact rules: phones normalized to E.164 and unique per organization, tags, opt-in, attributes."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from kaanha.consent.schemas import ConsentSource
from kaanha.consent.service import set_opt_in
from kaanha.contacts.repository import ContactRepository
from kaanha.contacts.schemas import ContactCreate, ContactOut, ContactUpdate
from kaanha.contacts.schemas import contact_out as contact_out  # kept importable from here, where it lived
from kaanha.errors import Conflict
from kaanha.events import types as event_types
from kaanha.events.service import emit
from kaanha.kit.clock import now
from kaanha.kit.ids import new_id
from kaanha.kit.pagination import Page, PageRequest
from kaanha.kit.phone import normalize_phone
from kaanha.models import Contact
from kaanha.organizations.repository import get_organization


class DuplicateContact(Conflict):
    code = "duplicate_contact"


async def announce(session: AsyncSession, contact: Contact, event_type: str, *, tags: list[str] | None = None) -> None:
    """Emit `event_type` with the contact as `GET /contacts/{id}` shows it (its tags read unless given)."""
    if tags is None:
        tags = (await ContactRepository(session, contact.organization_id).tags_for([contact.id])).get(contact.id, [])
    await emit(session, organization_id=contact.organization_id, type=event_type, data=contact_out(contact, tags))


async def normalize_for_organization(session: AsyncSession, *, organization_id: str, phone: str) -> str:
    """E.164 for `phone`, reading a number without a country code in the organization's region."""
    organization = await get_organization(session, organization_id)
    return normalize_phone(phone, default_region=organization.default_region)


async def list_contacts(
    session: AsyncSession, *, organization_id: str, search: str | None, tag: str | None, page: PageRequest
) -> Page[ContactOut]:
    repository = ContactRepository(session, organization_id)
    contacts, total = await repository.page(repository.listing(search=search, tag=tag), page)
    tags = await repository.tags_for([contact.id for contact in contacts])
    return Page.of([contact_out(c, tags.get(c.id, [])) for c in contacts], request=page, total=total)


async def get_contact(session: AsyncSession, *, organization_id: str, contact_id: str) -> ContactOut:
    repository = ContactRepository(session, organization_id)
    contact = await repository.get(contact_id)
    tags = await repository.tags_for([contact.id])
    return contact_out(contact, tags.get(contact.id, []))


async def create_contact(
    session: AsyncSession,
    *,
    organization_id: str,
    data: ContactCreate,
    source: ConsentSource = "api",
    source_detail: str | None = None,
) -> ContactOut:
    """Create a contact; 409 when its normalized phone already belongs to one.

    `optedIn: true` is recorded as a consent change from `source` (`source_detail`: who made it).
    """
    repository = ContactRepository(session, organization_id)
    phone = await normalize_for_organization(session, organization_id=organization_id, phone=data.phone)
    existing = await repository.find_by_phone(phone)
    if existing is not None:
        raise DuplicateContact(f"A contact with phone {phone} already exists: {existing.id}")
    moment = now()
    contact = repository.add(
        Contact(
            id=new_id("ctc"),
            phone=phone,
            name=data.name or None,
            email=data.email,
            opted_in=False,
            attributes=dict(data.attributes),
            created_at=moment,
            updated_at=moment,
        )
    )
    try:
        async with session.begin_nested():
            await session.flush()
    except IntegrityError:
        raise DuplicateContact(f"A contact with phone {phone} already exists") from None
    await repository.set_tags(contact.id, data.tags)
    if data.opted_in:
        await set_opt_in(
            session, contact=contact, opted_in=True, source=source, detail=source_detail, at=moment, announce=False
        )
    created = contact_out(contact, sorted(data.tags))
    await emit(session, organization_id=organization_id, type=event_types.CONTACT_CREATED, data=created)
    return created


async def update_contact(
    session: AsyncSession,
    *,
    organization_id: str,
    contact_id: str,
    data: ContactUpdate,
    source: ConsentSource = "api",
    source_detail: str | None = None,
) -> ContactOut:
    """Change the fields given; one `contact.updated` when anything changed, opt-in included.

    `optedIn` is recorded as a consent change from `source` when it differs from the contact's: false
    for a contact who never opted in leaves them "not opted in" (only the customer's STOP makes that an opt-out).
    """
    repository = ContactRepository(session, organization_id)
    contact = await repository.get(contact_id)
    before = contact_out(contact, (await repository.tags_for([contact.id])).get(contact.id, []))
    fields = data.model_fields_set
    if "phone" in fields and data.phone is not None:
        phone = await normalize_for_organization(session, organization_id=organization_id, phone=data.phone)
        if phone != contact.phone:
            other = await repository.find_by_phone(phone)
            if other is not None:
                raise DuplicateContact(f"A contact with phone {phone} already exists: {other.id}")
            contact.phone = phone
    if "name" in fields:
        contact.name = data.name or None
    if "email" in fields:
        contact.email = data.email
    if "attributes" in fields and data.attributes is not None:
        contact.attributes = dict(data.attributes)
    contact.updated_at = now()
    try:
        async with session.begin_nested():
            await session.flush()
    except IntegrityError:
        raise DuplicateContact(f"A contact with phone {contact.phone} already exists") from None
    if "opted_in" in fields and data.opted_in is not None and data.opted_in != contact.opted_in:
        await set_opt_in(
            session, contact=contact, opted_in=data.opted_in, source=source, detail=source_detail, announce=False
        )
    if "tags" in fields and data.tags is not None:
        await repository.set_tags(contact.id, data.tags)
    after = await get_contact(session, organization_id=organization_id, contact_id=contact.id)
    # A PATCH that changes nothing still moves updatedAt, but tells no one.
    if after.model_dump(exclude={"updated_at"}) != before.model_dump(exclude={"updated_at"}):
        await emit(session, organization_id=organization_id, type=event_types.CONTACT_UPDATED, data=after)
    return after


async def delete_contact(session: AsyncSession, *, organization_id: str, contact_id: str) -> None:
    """Delete a contact with its conversations and messages; `contact.deleted` carries it as it was."""
    repository = ContactRepository(session, organization_id)
    contact = await repository.get(contact_id)
    last_seen = contact_out(contact, (await repository.tags_for([contact.id])).get(contact.id, []))
    await session.delete(contact)
    await session.flush()
    await emit(session, organization_id=organization_id, type=event_types.CONTACT_DELETED, data=last_seen)


async def ensure_contact(
    session: AsyncSession,
    *,
    organization_id: str,
    phone: str,
    profile_name: str | None = None,
    message_at: datetime | None = None,
    inbound: bool = False,
) -> Contact:
    """The contact with this E.164 phone, created when new (inbound messages and first sends).

    A profile name from WhatsApp fills an empty name but never overwrites one a person chose.
    `message_at`, when a message to (or, `inbound`, from) the contact is being stored, moves its
    lastMessageAt (and the 24-hour window) first, so `contact.created` shows it as it will be stored.
    A message moving lastMessageAt alone is no `contact.updated`: that would be one event per message.
    """
    repository = ContactRepository(session, organization_id)
    contact = await repository.find_by_phone(phone)
    if contact is None:
        moment = now()
        new = Contact(
            id=new_id("ctc"),
            phone=phone,
            name=profile_name,
            attributes={},
            opted_in=False,
            created_at=moment,
            updated_at=moment,
        )
        _touch(new, message_at, inbound=inbound)
        if await repository.add_unless_taken(new):
            await announce(session, new, event_types.CONTACT_CREATED, tags=[])
            return new
        # Another request created it a moment ago: use theirs.
        contact = await repository.find_by_phone(phone)
        if contact is None:
            raise DuplicateContact(f"A contact with phone {phone} is being created; retry")
    renamed = bool(profile_name and not contact.name)
    if renamed:
        contact.name = profile_name
        contact.updated_at = now()
    _touch(contact, message_at, inbound=inbound)
    if renamed:
        await announce(session, contact, event_types.CONTACT_UPDATED)
    return contact


def _touch(contact: Contact, at: datetime | None, *, inbound: bool) -> None:
    """A message at `at`: never moves the times backwards, as webhooks may arrive out of order."""
    if at is None:
        return
    if inbound:
        if contact.last_inbound_at is None or at > contact.last_inbound_at:
            contact.last_inbound_at = at
        contact.updated_at = now()
    if contact.last_message_at is None or at > contact.last_message_at:
        contact.last_message_at = at
