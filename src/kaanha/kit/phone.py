"""Phone numbers: E.164 for storage, WhatsApp's digits-only `wa_id`, and a readable form."""

from __future__ import annotations

import re

import phonenumbers

from kaanha.errors import InvalidRequest


class InvalidPhoneNumber(InvalidRequest):
    code = "invalid_phone_number"


_ALLOWED = re.compile(r"^[+\d\s().\-]+$")


def normalize_phone(raw: str, *, default_region: str) -> str:
    """Return `raw` as E.164 (`+919876543210`).

    A number without a country code is read in the organization's region; a number that
    `phonenumbers` cannot read, or reads as impossible, is refused.
    """
    text = raw.strip()
    if not text or len(text) > 32 or not _ALLOWED.match(text):
        raise InvalidPhoneNumber(f"'{raw}' is not a phone number: use E.164 such as +919876543210")
    if text.startswith("00"):
        text = "+" + text[2:]
    try:
        parsed = phonenumbers.parse(text, None if text.startswith("+") else default_region)
    except phonenumbers.NumberParseException as error:
        raise InvalidPhoneNumber(f"'{raw}' is not a phone number ({error}): use E.164 such as +919876543210") from None
    if not phonenumbers.is_valid_number(parsed):
        raise InvalidPhoneNumber(f"'{raw}' is not a valid phone number for its country")
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)


def wa_id(e164: str) -> str:
    """WhatsApp addresses people by the digits of their number, without the plus."""
    return e164.lstrip("+")


def from_wa_id(sender: str) -> str:
    """E.164 for a WhatsApp id of digits; any other id (a user without a visible phone) is kept as it is."""
    if sender.isdigit():
        return f"+{sender}"
    return sender[:64]


def display_phone(e164: str | None) -> str | None:
    """`+91 98765 43210`: the international format people read."""
    if not e164:
        return None
    try:
        parsed = phonenumbers.parse(from_wa_id(e164), None)
    except phonenumbers.NumberParseException:
        return e164
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.INTERNATIONAL)


def phone_search_digits(text: str) -> str | None:
    """The digits of a search that looks like (part of) a phone number, else None."""
    stripped = text.strip()
    if stripped and _ALLOWED.match(stripped):
        digits = re.sub(r"\D", "", stripped)
        return digits or None
    return None
