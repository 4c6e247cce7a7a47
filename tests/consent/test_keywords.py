"""Customers opting out and back in by writing STOP, START or the organization's own words.

Customers write through the sandbox (`POST /sandbox/inbound`) or as Meta's webhook payloads applied by
the inbound pipeline (template buttons, duplicates, late and out-of-order deliveries); everything is
checked as an API user sees it: the contact, its opt-in history, and the confirmation in the thread.
"""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from kaanha.events import types
from kaanha.kit.clock import clock
from kaanha.models import Contact
from kaanha.worker.runner import drain
from tests.conftest import API, Tenant
from tests.consent.support import (
    OPT_IN_REPLY,
    OPT_OUT_REPLY,
    PHONE,
    create_contact,
    events,
    get,
    history,
    messages,
    meta_message,
    outbound_texts,
    webhook,
    writes,
)


def iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


async def contact_of(client: httpx.AsyncClient, tenant: Tenant, phone: str = PHONE) -> dict[str, Any]:
    found: list[dict[str, Any]] = (await get(client, tenant, "/contacts", search=phone))["data"]
    assert len(found) == 1, found
    return found[0]


async def keyword_changes(client: httpx.AsyncClient, tenant: Tenant, contact_id: str) -> list[tuple[bool, str]]:
    """(optedIn, the word as written) of the changes keywords made, newest first."""
    changes = await history(client, tenant, contact_id)
    return [(c["optedIn"], c["detail"]) for c in changes if c["source"] == "keyword"]


# --- STOP ---------------------------------------------------------------------------------------------


async def test_stop_opts_the_contact_out_and_answers_in_the_thread(client, tenant, runtime, frozen_clock):
    contact = await create_contact(client, tenant, optedIn=True)
    clock.advance(timedelta(minutes=5))

    stop = await writes(client, tenant, "STOP")

    after = await get(client, tenant, f"/contacts/{contact['id']}")
    assert after["optedIn"] is False
    assert after["optedInSource"] == "keyword"
    assert after["optedInChangedAt"] == iso(frozen_clock + timedelta(minutes=5))
    changes = await history(client, tenant, contact["id"])
    assert (changes[0]["optedIn"], changes[0]["source"], changes[0]["detail"]) == (False, "keyword", "STOP")
    assert [c["source"] for c in changes] == ["keyword", "api"]  # newest first

    # The confirmation is an ordinary outbound message of the same conversation, queued with its send job.
    reply, received = (await messages(client, tenant))[:2]
    assert received["id"] == stop["id"]
    assert reply["direction"] == "outbound"
    assert reply["type"] == "text"
    assert reply["content"]["text"] == OPT_OUT_REPLY
    assert reply["status"] == "queued"
    assert reply["conversationId"] == stop["conversationId"]
    thread = await get(client, tenant, f"/chats/{stop['conversationId']}")
    assert [m["id"] for m in thread["messages"][:2]] == [reply["id"], stop["id"]]

    await drain(runtime)
    assert (await get(client, tenant, f"/messages/{reply['id']}"))["status"] == "sent"


@pytest.mark.parametrize(
    "text", ["STOP", "stop", "Stop", "  UnSubscribe  ", "unsubscribe\n", "\tSTOP ", "stop   promotions"]
)
async def test_opt_out_words_count_in_any_case_and_spacing(client, tenant, text):
    contact = await create_contact(client, tenant, optedIn=True)

    await writes(client, tenant, text)

    assert (await get(client, tenant, f"/contacts/{contact['id']}"))["optedIn"] is False
    assert (await history(client, tenant, contact["id"]))[0]["detail"] == text.strip()
    assert await outbound_texts(client, tenant) == [OPT_OUT_REPLY]


@pytest.mark.parametrize(
    "text",
    [
        "Please don't stop sending me offers",
        "stop it",
        "STOP!",
        "stopped",
        "nonstop",
        "Can I unsubscribe later?",
        "🛑",
    ],
)
async def test_a_message_that_is_not_exactly_an_opt_out_word_changes_nothing(client, tenant, runtime, text):
    contact = await create_contact(client, tenant, optedIn=True)
    updates = len(await events(runtime, tenant, types.CONTACT_UPDATED))

    await writes(client, tenant, text)

    after = await get(client, tenant, f"/contacts/{contact['id']}")
    assert after["optedIn"] is True
    assert after["optedInSource"] == "api"
    assert len(await history(client, tenant, contact["id"])) == 1
    assert len(await events(runtime, tenant, types.CONTACT_UPDATED)) == updates
    assert await outbound_texts(client, tenant) == []


async def test_stop_emits_contact_updated_once_with_the_contact_as_get_shows_it(client, tenant, runtime, frozen_clock):
    # Frozen: the confirmation queued right after moves lastMessageAt, by nothing within the same instant.
    contact = await create_contact(client, tenant, optedIn=True)

    await writes(client, tenant, "STOP")

    (updated,) = await events(runtime, tenant, types.CONTACT_UPDATED)
    assert updated.data == await get(client, tenant, f"/contacts/{contact['id']}")
    assert updated.data["optedIn"] is False


async def test_stop_from_someone_new_creates_them_opted_out(client, tenant):
    await writes(client, tenant, "Stop")

    contact = await contact_of(client, tenant)
    assert contact["optedIn"] is False
    assert contact["optedInSource"] == "keyword"
    assert contact["optedInChangedAt"] is not None
    assert [(c["optedIn"], c["detail"]) for c in await history(client, tenant, contact["id"])] == [(False, "Stop")]
    assert await outbound_texts(client, tenant) == [OPT_OUT_REPLY]


async def test_a_repeated_stop_is_confirmed_again_but_recorded_once(client, tenant, runtime, frozen_clock):
    contact = await create_contact(client, tenant, optedIn=True)
    await writes(client, tenant, "STOP")
    first = await get(client, tenant, f"/contacts/{contact['id']}")
    updates = len(await events(runtime, tenant, types.CONTACT_UPDATED))
    clock.advance(timedelta(minutes=10))

    await writes(client, tenant, "unsubscribe")

    after = await get(client, tenant, f"/contacts/{contact['id']}")
    assert after["optedInChangedAt"] == first["optedInChangedAt"]
    assert await keyword_changes(client, tenant, contact["id"]) == [(False, "STOP")]
    assert len(await history(client, tenant, contact["id"])) == 2
    assert len(await events(runtime, tenant, types.CONTACT_UPDATED)) == updates
    assert await outbound_texts(client, tenant) == [OPT_OUT_REPLY, OPT_OUT_REPLY]


async def test_a_repeated_start_is_confirmed_again_but_not_recorded(client, tenant, runtime):
    contact = await create_contact(client, tenant, optedIn=True)

    await writes(client, tenant, "START")

    assert [c["source"] for c in await history(client, tenant, contact["id"])] == ["api"]
    assert await events(runtime, tenant, types.CONTACT_UPDATED) == []
    assert await outbound_texts(client, tenant) == [OPT_IN_REPLY]


# --- START --------------------------------------------------------------------------------------------


async def test_start_opts_back_in_with_its_own_confirmation(client, tenant, frozen_clock):
    contact = await create_contact(client, tenant, optedIn=True)
    await writes(client, tenant, "STOP")
    clock.advance(timedelta(hours=1))

    await writes(client, tenant, "start")

    after = await get(client, tenant, f"/contacts/{contact['id']}")
    assert after["optedIn"] is True
    assert after["optedInSource"] == "keyword"
    assert after["optedInChangedAt"] == iso(frozen_clock + timedelta(hours=1))
    changes = await history(client, tenant, contact["id"])
    assert [(c["optedIn"], c["source"]) for c in changes] == [(True, "keyword"), (False, "keyword"), (True, "api")]
    assert await keyword_changes(client, tenant, contact["id"]) == [(True, "start"), (False, "STOP")]
    assert await outbound_texts(client, tenant) == [OPT_OUT_REPLY, OPT_IN_REPLY]


async def test_start_from_someone_who_never_opted_in_signs_them_up(client, tenant):
    contact = await create_contact(client, tenant)

    await writes(client, tenant, "START")

    assert (await get(client, tenant, f"/contacts/{contact['id']}"))["optedIn"] is True
    assert await outbound_texts(client, tenant) == [OPT_IN_REPLY]


# --- The organization's own words and replies ----------------------------------------------------------


async def test_the_organizations_own_words_and_replies(client, tenant):
    settings = {
        "optOutKeywords": ["Basta", "no more offers"],
        "optInKeywords": ["Offers please"],
        "optOutReply": "Done, no more offers. Write OFFERS PLEASE to get them again.",
        "optInReply": "Welcome back to our offers!",
    }
    r = await client.put(f"{API}/opt-in-settings", headers=tenant.headers, json=settings)
    assert r.status_code == 200, r.text
    contact = await create_contact(client, tenant, optedIn=True)

    await writes(client, tenant, " BASTA ")
    assert (await get(client, tenant, f"/contacts/{contact['id']}"))["optedIn"] is False
    await writes(client, tenant, "offers PLEASE")
    assert (await get(client, tenant, f"/contacts/{contact['id']}"))["optedIn"] is True
    await writes(client, tenant, "No More  Offers")
    assert (await get(client, tenant, f"/contacts/{contact['id']}"))["optedIn"] is False
    await writes(client, tenant, "STOP")  # the built-in words keep working

    assert await keyword_changes(client, tenant, contact["id"]) == [
        (False, "No More  Offers"),
        (True, "offers PLEASE"),
        (False, "BASTA"),
    ]
    assert await outbound_texts(client, tenant) == [
        settings["optOutReply"],
        settings["optInReply"],
        settings["optOutReply"],
        settings["optOutReply"],
    ]


async def test_another_organizations_words_mean_nothing_here(client, tenant, other_tenant):
    r = await client.put(f"{API}/opt-in-settings", headers=other_tenant.headers, json={"optOutKeywords": ["basta"]})
    assert r.status_code == 200, r.text
    contact = await create_contact(client, tenant, optedIn=True)

    await writes(client, tenant, "basta")

    assert (await get(client, tenant, f"/contacts/{contact['id']}"))["optedIn"] is True
    assert await outbound_texts(client, tenant) == []


# --- Buttons ------------------------------------------------------------------------------------------


async def test_metas_stop_promotions_button_opts_out(client, tenant, runtime):
    contact = await create_contact(client, tenant, optedIn=True)

    summary = await webhook(
        runtime, tenant, meta_message("button", {"text": "Stop promotions", "payload": "Stop promotions"})
    )

    assert len(summary.messages) == 1
    after = await get(client, tenant, f"/contacts/{contact['id']}")
    assert after["optedIn"] is False
    assert (await history(client, tenant, contact["id"]))[0]["detail"] == "Stop promotions"
    assert await outbound_texts(client, tenant) == [OPT_OUT_REPLY]


async def test_a_template_button_whose_payload_is_stop_opts_out(client, tenant, runtime):
    contact = await create_contact(client, tenant, optedIn=True)

    await webhook(runtime, tenant, meta_message("button", {"text": "No more offers", "payload": "STOP"}))

    assert (await get(client, tenant, f"/contacts/{contact['id']}"))["optedIn"] is False


async def test_a_hidden_start_payload_never_signs_anyone_up(client, tenant, runtime):
    contact = await create_contact(client, tenant)

    await webhook(runtime, tenant, meta_message("button", {"text": "Get started", "payload": "start"}))
    interactive = {"type": "button_reply", "button_reply": {"id": "START", "title": "Track my order"}}
    await webhook(runtime, tenant, meta_message("interactive", interactive))

    assert (await get(client, tenant, f"/contacts/{contact['id']}"))["optedIn"] is False
    assert await history(client, tenant, contact["id"]) == []
    assert await outbound_texts(client, tenant) == []


async def test_a_reply_button_titled_stop_opts_out(client, tenant):
    contact = await create_contact(client, tenant, optedIn=True)

    r = await client.post(
        f"{API}/sandbox/inbound",
        headers=tenant.headers,
        json={"from": PHONE, "type": "button_reply", "buttonId": "opt-out", "buttonTitle": "Stop"},
    )
    assert r.status_code == 201, r.text

    assert (await get(client, tenant, f"/contacts/{contact['id']}"))["optedIn"] is False


# --- Meta's retries, late and out-of-order deliveries --------------------------------------------------


async def test_a_duplicate_webhook_does_not_act_twice(client, tenant, runtime):
    contact = await create_contact(client, tenant, optedIn=True)
    stop = meta_message("text", {"body": "STOP"})

    first = await webhook(runtime, tenant, stop)
    again = await webhook(runtime, tenant, stop)

    assert (len(first.messages), first.duplicates) == (1, 0)
    assert (len(again.messages), again.duplicates) == (0, 1)
    assert len(await history(client, tenant, contact["id"])) == 2  # the api opt-in and one STOP
    assert await outbound_texts(client, tenant) == [OPT_OUT_REPLY]
    assert len(await events(runtime, tenant, types.CONTACT_UPDATED)) == 1


async def test_an_older_keyword_arriving_late_does_not_undo_a_newer_one(client, tenant, runtime, frozen_clock):
    contact = await create_contact(client, tenant, optedIn=True)
    clock.advance(timedelta(minutes=10))
    stop_at = frozen_clock + timedelta(minutes=1)
    start_at = frozen_clock + timedelta(minutes=2)

    await webhook(runtime, tenant, meta_message("text", {"body": "STOP"}, at=stop_at))
    await webhook(runtime, tenant, meta_message("text", {"body": "START"}, at=start_at))
    late = await webhook(runtime, tenant, meta_message("text", {"body": "STOP"}, at=stop_at + timedelta(seconds=30)))

    assert len(late.messages) == 1  # stored like any message, but it is old news
    after = await get(client, tenant, f"/contacts/{contact['id']}")
    assert after["optedIn"] is True
    assert after["optedInChangedAt"] == iso(start_at)
    assert await keyword_changes(client, tenant, contact["id"]) == [(True, "START"), (False, "STOP")]
    assert await outbound_texts(client, tenant) == [OPT_OUT_REPLY, OPT_IN_REPLY]


async def test_a_keyword_delivered_after_the_window_closed_counts_but_is_not_answered(
    client, tenant, runtime, frozen_clock
):
    contact = await create_contact(client, tenant, optedIn=True)
    clock.advance(timedelta(hours=30))

    await webhook(runtime, tenant, meta_message("text", {"body": "STOP"}, at=frozen_clock + timedelta(hours=1)))

    after = await get(client, tenant, f"/contacts/{contact['id']}")
    assert after["optedIn"] is False
    assert after["optedInChangedAt"] == iso(frozen_clock + timedelta(hours=1))
    assert await outbound_texts(client, tenant) == []


async def test_a_keyword_opts_out_only_its_own_contact(client, tenant, runtime):
    other = "+919812345678"
    await create_contact(client, tenant, optedIn=True)
    await create_contact(client, tenant, optedIn=True, phone=other)

    await writes(client, tenant, "STOP", phone=other)

    async with runtime.database.sessions() as session:
        opted = dict((await session.execute(select(Contact.phone, Contact.opted_in))).all())
    assert opted == {PHONE: True, other: False}


async def test_parallel_stops_from_one_customer_are_recorded_once(client, tenant):
    contact = await create_contact(client, tenant, optedIn=True)

    responses = await asyncio.gather(
        *[
            client.post(f"{API}/sandbox/inbound", headers=tenant.headers, json={"from": PHONE, "text": "STOP"})
            for _ in range(5)
        ]
    )

    assert [r.status_code for r in responses] == [201] * 5, [r.text for r in responses]
    assert await keyword_changes(client, tenant, contact["id"]) == [(False, "STOP")]
    assert await outbound_texts(client, tenant) == [OPT_OUT_REPLY] * 5
