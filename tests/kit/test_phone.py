"""Phone numbers: stored as E.164 whatever way people write them, shown in international format."""

from __future__ import annotations

import pytest

from kaanha.kit.phone import InvalidPhoneNumber, display_phone, from_wa_id, normalize_phone, wa_id


@pytest.mark.parametrize(
    ("raw", "region", "expected"),
    [
        # Already E.164, in any region
        ("+919876543210", "IN", "+919876543210"),
        ("+919876543210", "US", "+919876543210"),
        ("+14155552671", "IN", "+14155552671"),
        ("+447911123456", "IN", "+447911123456"),
        # E.164 written with spaces, dashes, dots and brackets
        ("+91 98765 43210", "IN", "+919876543210"),
        ("+91-98765-43210", "IN", "+919876543210"),
        ("+1 (415) 555-2671", "IN", "+14155552671"),
        ("  +91 98765 43210  ", "IN", "+919876543210"),
        # Local numbers, read in the organization's region
        ("9876543210", "IN", "+919876543210"),
        ("98765 43210", "IN", "+919876543210"),
        ("098765 43210", "IN", "+919876543210"),
        ("(415) 555-2671", "US", "+14155552671"),
        ("415.555.2671", "US", "+14155552671"),
        ("07911 123456", "GB", "+447911123456"),
        # The international 00 prefix
        ("00919876543210", "IN", "+919876543210"),
        ("0044 7911 123456", "IN", "+447911123456"),
        ("001 415 555 2671", "GB", "+14155552671"),
    ],
)
def test_numbers_are_normalized_to_e164(raw, region, expected):
    assert normalize_phone(raw, default_region=region) == expected


@pytest.mark.parametrize(
    ("raw", "region"),
    [
        ("", "IN"),
        ("   ", "IN"),
        ("abc", "IN"),
        ("call me", "IN"),
        ("12", "IN"),
        ("+91 12345", "IN"),  # too short for India
        ("+999 123 456 789", "IN"),  # no such country code
        ("98765", "IN"),
        ("+919876543210; DROP TABLE contacts", "IN"),
        ("+91987654321O", "IN"),  # a letter O, not a zero
        ("+" + "9" * 40, "IN"),
        ("9876543210", "US"),  # a local Indian number makes no sense in the US
    ],
)
def test_invalid_numbers_are_refused_with_invalid_phone_number(raw, region):
    with pytest.raises(InvalidPhoneNumber) as caught:
        normalize_phone(raw, default_region=region)

    assert caught.value.code == "invalid_phone_number"
    assert caught.value.status_code == 400
    assert caught.value.message


def test_the_error_shows_what_a_good_number_looks_like():
    with pytest.raises(InvalidPhoneNumber) as caught:
        normalize_phone("not a phone", default_region="IN")

    assert "+919876543210" in caught.value.message


@pytest.mark.parametrize(
    ("e164", "expected"),
    [
        ("+919876543210", "+91 98765 43210"),
        ("919876543210", "+91 98765 43210"),  # WhatsApp's wa_id, without the plus
        ("+14155552671", "+1 415-555-2671"),
        ("+447911123456", "+44 7911 123456"),
        (None, None),
        ("", None),
    ],
)
def test_display_phone_is_the_international_format(e164, expected):
    assert display_phone(e164) == expected


def test_display_phone_of_something_unreadable_gives_it_back():
    assert display_phone("+") == "+"


def test_normalized_numbers_display_readably():
    assert display_phone(normalize_phone("098765 43210", default_region="IN")) == "+91 98765 43210"


def test_wa_id_round_trip():
    assert wa_id("+919876543210") == "919876543210"
    assert from_wa_id("919876543210") == "+919876543210"
    assert from_wa_id("+919876543210") == "+919876543210"
