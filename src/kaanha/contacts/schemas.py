"""Public shapes of contacts."""

from __future__ import annotations

import math
import re
from typing import Annotated, Any

from pydantic import Field, StringConstraints, field_validator

from kaanha.kit.schemas import RequestSchema, Schema, Timestamp
from kaanha.models import Contact

MAX_TAGS = 20
MAX_ATTRIBUTES = 50
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")

Tag = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=64)]
AttributeValue = str | int | float | bool | None


class ContactOut(Schema):
    id: str
    phone: str
    name: str | None
    email: str | None
    tags: list[str]
    opted_in: bool
    # When and how optedIn last changed (api, keyword, import, dashboard); the story is in /opt-in-history.
    opted_in_changed_at: Timestamp | None
    opted_in_source: str | None
    attributes: dict[str, Any]
    created_at: Timestamp
    updated_at: Timestamp
    last_message_at: Timestamp | None


def contact_out(contact: Contact, tags: list[str]) -> ContactOut:
    return ContactOut(
        id=contact.id,
        phone=contact.phone,
        name=contact.name,
        email=contact.email,
        tags=tags,
        opted_in=contact.opted_in,
        opted_in_changed_at=contact.opted_in_changed_at,
        opted_in_source=contact.opted_in_source,
        attributes=contact.attributes or {},
        created_at=contact.created_at,
        updated_at=contact.updated_at,
        last_message_at=contact.last_message_at,
    )


def _check_email(value: str | None) -> str | None:
    if value is None or value == "":
        return None
    if len(value) > 320 or not _EMAIL.match(value):
        raise ValueError(f"'{value}' is not an email address")
    return value


def _check_tags(tags: list[str] | None) -> list[str] | None:
    if tags is None:
        return None
    unique = list(dict.fromkeys(tags))
    if len(unique) > MAX_TAGS:
        raise ValueError(f"at most {MAX_TAGS} tags per contact")
    return unique


def _check_attributes(attributes: dict[str, AttributeValue] | None) -> dict[str, AttributeValue] | None:
    if attributes is None:
        return None
    if len(attributes) > MAX_ATTRIBUTES:
        raise ValueError(f"at most {MAX_ATTRIBUTES} attributes per contact")
    for key, value in attributes.items():
        if not key or len(key) > 64:
            raise ValueError("attribute names are 1 to 64 characters")
        if isinstance(value, str) and len(value) > 1000:
            raise ValueError(f"attribute '{key}' is longer than 1000 characters")
        if isinstance(value, float) and not math.isfinite(value):
            raise ValueError(f"attribute '{key}' must be a finite number")
        if isinstance(value, int) and not isinstance(value, bool) and not -(2**63) <= value < 2**63:
            raise ValueError(f"attribute '{key}' is outside the 64-bit integer range")
    return attributes


class ContactCreate(RequestSchema):
    phone: str = Field(min_length=1, max_length=32, examples=["+919876543210"])
    name: str | None = Field(default=None, max_length=200)
    email: str | None = None
    tags: list[Tag] = Field(default_factory=list)
    opted_in: bool = False
    attributes: dict[str, AttributeValue] = Field(default_factory=dict)

    _email = field_validator("email")(_check_email)
    _tags = field_validator("tags")(_check_tags)
    _attributes = field_validator("attributes")(_check_attributes)


class ContactUpdate(RequestSchema):
    """Only the fields present change; `attributes` replaces the whole map."""

    phone: str | None = Field(default=None, min_length=1, max_length=32)
    name: str | None = Field(default=None, max_length=200)
    email: str | None = None
    tags: list[Tag] | None = None
    opted_in: bool | None = None
    attributes: dict[str, AttributeValue] | None = None

    _email = field_validator("email")(_check_email)
    _tags = field_validator("tags")(_check_tags)
    _attributes = field_validator("attributes")(_check_attributes)
