"""`GET|PUT /opt-in-settings`: an organization's own opt-out and opt-in words and replies, and bad input."""

from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import API, make_tenant
from tests.helpers import assert_error

SETTINGS = f"{API}/opt-in-settings"
SAVED = {
    "optOutKeywords": ["BASTA", "No more offers"],
    "optInKeywords": ["OFFERS PLEASE"],
    "optOutReply": "Done: no more offers.",
    "optInReply": "Welcome back!",
}


async def test_an_organization_starts_with_the_built_in_words_only(client, tenant):
    r = await client.get(SETTINGS, headers=tenant.headers)

    assert r.status_code == 200, r.text
    assert r.json() == {"optOutKeywords": [], "optInKeywords": [], "optOutReply": None, "optInReply": None}


async def test_put_replaces_the_settings_and_get_shows_them(client, tenant, other_tenant):
    r = await client.put(SETTINGS, headers=tenant.headers, json=SAVED)

    assert r.status_code == 200, r.text
    assert r.json() == SAVED
    assert (await client.get(SETTINGS, headers=tenant.headers)).json() == SAVED
    assert (await client.get(SETTINGS, headers=other_tenant.headers)).json()["optOutKeywords"] == []

    # Omitted lists become empty and omitted replies the built-in wording: PUT replaces everything.
    r = await client.put(SETTINGS, headers=tenant.headers, json={"optInKeywords": ["yes"], "optOutReply": ""})
    assert r.json() == {"optOutKeywords": [], "optInKeywords": ["yes"], "optOutReply": None, "optInReply": None}


async def test_words_are_tidied_and_repeats_dropped(client, tenant):
    body = {"optOutKeywords": ["  no   more  ", "NO MORE", "basta", "STOP"], "optInKeywords": ["Yes\tplease"]}

    r = await client.put(SETTINGS, headers=tenant.headers, json=body)

    assert r.status_code == 200, r.text
    assert r.json()["optOutKeywords"] == ["no more", "basta", "STOP"]
    assert r.json()["optInKeywords"] == ["Yes please"]


@pytest.mark.parametrize(
    ("case", "body", "says"),
    [
        ("21 opt-out words", {"optOutKeywords": [f"word{i}" for i in range(21)]}, "at most 20 opt-out keywords"),
        ("21 opt-in words", {"optInKeywords": [f"word{i}" for i in range(21)]}, "at most 20 opt-in keywords"),
        ("an empty word", {"optOutKeywords": ["basta", "   "]}, "opt-out keywords can't be empty"),
        ("a 31-character word", {"optInKeywords": ["x" * 31]}, "longer than 30 characters"),
        ("a word in both lists", {"optOutKeywords": ["Basta"], "optInKeywords": ["BASTA"]}, "both"),
        ("START to opt out", {"optOutKeywords": ["start"]}, "built-in opt-in keyword"),
        ("STOP to opt in", {"optInKeywords": ["Stop"]}, "built-in opt-out keyword"),
        ("UNSUBSCRIBE to opt in", {"optInKeywords": ["unsubscribe"]}, "built-in opt-out keyword"),
        ("a reply over 1024 characters", {"optOutReply": "x" * 1025}, "1024"),
        ("a word that is not a string", {"optOutKeywords": [42]}, "optOutKeywords"),
        ("a list that is a string", {"optInKeywords": "yes"}, "optInKeywords"),
        ("an unknown field", {"optOutWords": ["basta"]}, "optOutWords"),
        ("a NUL character", {"optOutReply": "bye\u0000"}, "NUL"),
    ],
)
async def test_bad_settings_are_400_and_write_nothing(client, tenant, case, body: dict[str, Any], says):
    await client.put(SETTINGS, headers=tenant.headers, json=SAVED)

    r = await client.put(SETTINGS, headers=tenant.headers, json=body)

    assert says in assert_error(r, 400)["error"], case
    assert (await client.get(SETTINGS, headers=tenant.headers)).json() == SAVED


async def test_limits_themselves_are_allowed(client, tenant):
    body = {
        "optOutKeywords": [f"out {i}" for i in range(20)],
        "optInKeywords": ["y" * 30],
        "optOutReply": "x" * 1024,
    }

    r = await client.put(SETTINGS, headers=tenant.headers, json=body)

    assert r.status_code == 200, r.text
    assert len(r.json()["optOutKeywords"]) == 20


async def test_reading_needs_contacts_read_and_changing_contacts_write(client, runtime):
    reader = await make_tenant(runtime, "Reader", scopes=["contacts:read"])
    nobody = await make_tenant(runtime, "Sender", scopes=["messages:send"])

    assert (await client.get(SETTINGS, headers=reader.headers)).status_code == 200
    assert_error(await client.put(SETTINGS, headers=reader.headers, json=SAVED), 403, "insufficient_scope")
    assert_error(await client.get(SETTINGS, headers=nobody.headers), 403, "insufficient_scope")
    assert (await client.get(SETTINGS, headers=reader.headers)).json()["optOutKeywords"] == []
