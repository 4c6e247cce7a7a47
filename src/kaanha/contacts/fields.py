"""Contact fields in message texts: `{{contact.name}}`, `{{contact.attributes.city|there}}` and friends.

Broadcasts fill template parameters with them, and quick replies their text. The part after `|`
is the fallback used when the contact has no such value.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from kaanha.errors import InvalidRequest
from kaanha.models import Contact

FIELD = re.compile(r"\{\{\s*contact\.([A-Za-z0-9_.\-]*)\s*(?:\|([^{}]*))?\}\}")
PLAIN_FIELDS = ("name", "phone", "email")
ATTRIBUTE_PREFIX = "attributes."


class UnknownContactField(InvalidRequest):
    code = "unknown_contact_field"


@dataclass
class Rendered:
    text: str
    # Fields the contact had no value for and that had no fallback, e.g. "contact.attributes.city".
    missing: list[str] = field(default_factory=list)


def check_fields(text: str, *, where: str) -> None:
    """Refuse a text naming a field contacts don't have (a typo would otherwise fill every message with nothing)."""
    for match in FIELD.finditer(text):
        name = match.group(1)
        attribute = name.removeprefix(ATTRIBUTE_PREFIX)
        if name not in PLAIN_FIELDS and not (name.startswith(ATTRIBUTE_PREFIX) and attribute):
            raise UnknownContactField(
                f"{where}: '{{{{contact.{name}}}}}' is not a contact field; use contact.name, contact.phone, "
                "contact.email or contact.attributes.<name>, optionally with a fallback: {{contact.name|there}}"
            )


def _value(contact: Contact, name: str) -> Any:
    if name.startswith(ATTRIBUTE_PREFIX):
        attributes = contact.attributes if contact.attributes is not None else {}
        return attributes.get(name.removeprefix(ATTRIBUTE_PREFIX))
    return getattr(contact, name, None)


def render(text: str, contact: Contact) -> Rendered:
    """`text` with the contact's fields filled in; fields without a value take their fallback."""
    missing: list[str] = []

    def fill(match: re.Match[str]) -> str:
        value = _value(contact, match.group(1))
        if value is not None and str(value).strip():
            return str(value)
        fallback = match.group(2)
        if fallback is None or not fallback.strip():
            missing.append(f"contact.{match.group(1)}")
            return ""
        return fallback.strip()

    return Rendered(FIELD.sub(fill, text), missing)


def render_structure(value: Any, contact: Contact, missing: list[str]) -> Any:
    """Every string inside `value` (template components) rendered for `contact`; missing fields are collected."""
    if isinstance(value, str):
        rendered = render(value, contact)
        missing.extend(rendered.missing)
        return rendered.text
    if isinstance(value, dict):
        return {key: render_structure(item, contact, missing) for key, item in value.items()}
    if isinstance(value, list):
        return [render_structure(item, contact, missing) for item in value]
    return value


def check_structure(value: Any, *, where: str) -> None:
    if isinstance(value, str):
        check_fields(value, where=where)
    elif isinstance(value, dict):
        for key, item in value.items():
            check_structure(item, where=f"{where}.{key}")
    elif isinstance(value, list):
        for index, item in enumerate(value):
            check_structure(item, where=f"{where}[{index}]")
