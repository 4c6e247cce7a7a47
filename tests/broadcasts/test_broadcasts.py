"""Broadcasts: creation checks, plan limits, dispatch to completion, skips, scheduling, pause, resume, cancel."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import httpx
from sqlalchemy import func, select

from kaanha.app import create_app
from kaanha.config import RateLimitSettings
from kaanha.kit.clock import clock, now
from kaanha.kit.ids import new_id
from kaanha.models import Broadcast, Contact, ContactTag, Conversation, Event, Message, Template, WebhookDelivery
from kaanha.runtime import Runtime
from kaanha.worker.runner import Worker, drain
from tests.conftest import API, Tenant, make_tenant
from tests.helpers import assert_error, inbound
from tests.webhooks.delivery_support import TableResolver

ORDER_UPDATE = [
    {
        "type": "body",
        "parameters": [
            {"type": "text", "text": "{{contact.name|there}}"},
            {"type": "text", "text": "{{contact.attributes.order|your order}}"},
        ],
    }
]


async def add_contacts(
    runtime: Runtime,
    tenant: Tenant,
    count: int,
    *,
    tag: str | None = "vip",
    opted_in: bool = True,
    start: int = 0,
    attributes: dict[str, Any] | None = None,
) -> list[str]:
    """`count` contacts straight into the database (thousands in a second), tagged and opted in as asked."""
    ids = []
    async with runtime.database.transaction() as session:
        for n in range(start, start + count):
            contact = Contact(
                id=new_id("ctc"),
                organization_id=tenant.organization_id,
                phone=f"+9198{n:08d}",
                name=f"Customer {n}",
                attributes=dict(attributes or {}),
                opted_in=opted_in,
                opted_in_changed_at=now() if opted_in else None,
            )
            session.add(contact)
            ids.append(contact.id)
        await session.flush()
        if tag:
            for contact_id in ids:
                session.add(ContactTag(organization_id=tenant.organization_id, contact_id=contact_id, tag=tag))
    return ids


async def create(client: httpx.AsyncClient, tenant: Tenant, **overrides: Any) -> httpx.Response:
    body: dict[str, Any] = {
        "name": "November update",
        "templateName": "order_update",
        "language": "en_US",
        "components": ORDER_UPDATE,
        "audience": {"tags": ["vip"]},
        **overrides,
    }
    return await client.post(f"{API}/broadcasts", json=body, headers=tenant.headers)


async def get(client: httpx.AsyncClient, tenant: Tenant, broadcast_id: str) -> dict[str, Any]:
    response = await client.get(f"{API}/broadcasts/{broadcast_id}", headers=tenant.headers)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def run_until_settled(
    runtime: Runtime, client: httpx.AsyncClient, tenant: Tenant, broadcast_id: str, *, rounds: int = 400
) -> dict[str, Any]:
    """Run the workers until the broadcast is completed, cancelled or paused (stepping a frozen clock)."""
    for _ in range(rounds):
        await drain(runtime)
        broadcast = await get(client, tenant, broadcast_id)
        if broadcast["status"] in ("completed", "cancelled", "paused"):
            return broadcast
        if clock.frozen:
            clock.advance(timedelta(seconds=1))
        else:
            await asyncio.sleep(0.02)
    raise AssertionError(f"broadcast {broadcast_id} did not settle: {broadcast}")


async def broadcast_messages(runtime: Runtime, broadcast_id: str) -> list[Message]:
    async with runtime.database.sessions() as session:
        return list(await session.scalars(select(Message).where(Message.broadcast_id == broadcast_id)))


async def add_template(runtime: Runtime, tenant: Tenant, name: str, category: str, status: str = "APPROVED") -> None:
    async with runtime.database.transaction() as session:
        session.add(
            Template(
                id=new_id("tpl"),
                organization_id=tenant.organization_id,
                name=name,
                language="en_US",
                category=category,
                status=status,
                components=[{"type": "BODY", "text": "Our November sale is on: 20% off everything in store."}],
            )
        )


# --- a broadcast from start to finish -------------------------------------------------------------------------


async def test_a_broadcast_sends_each_contact_its_own_rendered_template(client, tenant, runtime):
    ids = await add_contacts(runtime, tenant, 3, attributes={"order": "#1042"})
    await add_contacts(runtime, tenant, 2, tag="other", start=10)

    created = await create(client, tenant)

    assert created.status_code == 201, created.text
    broadcast = created.json()
    assert broadcast["status"] == "running"
    assert broadcast["templateName"] == "order_update"
    assert (broadcast["counts"]["total"], broadcast["counts"]["queued"], broadcast["progress"]) == (3, 3, 0.0)
    settled = await run_until_settled(runtime, client, tenant, broadcast["id"])
    assert settled["status"] == "completed"
    assert settled["completedAt"] is not None
    assert settled["progress"] == 1.0
    counts = settled["counts"]
    assert (counts["total"], counts["sent"], counts["queued"], counts["failed"], counts["skipped"]) == (3, 3, 0, 0, 0)
    messages = await broadcast_messages(runtime, broadcast["id"])
    assert sorted(m.contact_id for m in messages) == sorted(ids)
    previews = sorted(m.content["preview"] for m in messages)
    assert previews[0] == "Hi Customer 0, your order #1042 is on its way."
    assert all(m.type == "template" and m.status in ("sent", "delivered", "read") for m in messages)


async def test_fallbacks_fill_missing_contact_fields(client, tenant, runtime):
    async with runtime.database.transaction() as session:
        contact = Contact(
            id=new_id("ctc"), organization_id=tenant.organization_id, phone="+919800000001", attributes={}
        )
        session.add(contact)
        await session.flush()
        session.add(ContactTag(organization_id=tenant.organization_id, contact_id=contact.id, tag="vip"))

    broadcast = (await create(client, tenant)).json()
    await run_until_settled(runtime, client, tenant, broadcast["id"])

    [message] = await broadcast_messages(runtime, broadcast["id"])
    assert message.content["preview"] == "Hi there, your order your order is on its way."


async def test_a_field_without_value_or_fallback_skips_that_recipient(client, tenant, runtime):
    await add_contacts(runtime, tenant, 2, attributes={"city": "Pune"})
    await add_contacts(runtime, tenant, 1, start=5)
    components = [
        {
            "type": "body",
            "parameters": [
                {"type": "text", "text": "{{contact.name}}"},
                {"type": "text", "text": "{{contact.attributes.city}}"},
            ],
        }
    ]

    created = await create(client, tenant, components=components)
    assert created.status_code == 201, created.text
    settled = await run_until_settled(runtime, client, tenant, created.json()["id"])
    broadcast = created.json()

    assert settled["counts"]["sent"] == 2
    assert settled["counts"]["skipped"] == 1
    assert settled["skippedByReason"] == {"missing_contact_field": 1}
    skipped = (
        await client.get(f"{API}/broadcasts/{broadcast['id']}/recipients?status=skipped", headers=tenant.headers)
    ).json()
    assert [(r["phone"], r["status"], r["skipReason"]) for r in skipped["data"]] == [
        ("+919800000005", "skipped", "missing_contact_field")
    ]


async def test_marketing_broadcasts_skip_contacts_without_opt_in(client, tenant, runtime):
    await add_template(runtime, tenant, "november_sale", "MARKETING")
    await add_contacts(runtime, tenant, 2)
    [never] = await add_contacts(runtime, tenant, 1, opted_in=False, start=10)
    [withdrew] = await add_contacts(runtime, tenant, 1, opted_in=False, start=20)
    async with runtime.database.transaction() as session:
        (await session.get(Contact, withdrew)).opted_in_changed_at = now()  # type: ignore[union-attr]

    broadcast = (await create(client, tenant, templateName="november_sale", components=[])).json()
    settled = await run_until_settled(runtime, client, tenant, broadcast["id"])

    assert settled["category"] == "MARKETING"
    assert settled["counts"]["sent"] == 2
    assert settled["skippedByReason"] == {"not_opted_in": 1, "opted_out": 1}
    sent_to = {m.contact_id for m in await broadcast_messages(runtime, broadcast["id"])}
    assert never not in sent_to
    assert withdrew not in sent_to


async def test_audience_all_means_every_opted_in_contact(client, tenant, runtime):
    await add_contacts(runtime, tenant, 3, tag=None)
    await add_contacts(runtime, tenant, 2, tag=None, opted_in=False, start=10)

    broadcast = (await create(client, tenant, audience={"all": True})).json()

    assert (broadcast["counts"]["total"], broadcast["counts"]["queued"], broadcast["progress"]) == (3, 3, 0.0)
    settled = await run_until_settled(runtime, client, tenant, broadcast["id"])
    assert settled["counts"]["sent"] == 3


async def test_contact_ids_and_tags_together_reach_each_contact_once(client, tenant, runtime):
    tagged = await add_contacts(runtime, tenant, 2)
    untagged = await add_contacts(runtime, tenant, 2, tag=None, start=10)

    broadcast = (await create(client, tenant, audience={"tags": ["vip"], "contactIds": [tagged[0], *untagged]})).json()
    assert broadcast["audience"] == {"tags": ["vip"], "contactIdCount": 3}  # the ids themselves aren't echoed
    settled = await run_until_settled(runtime, client, tenant, broadcast["id"])

    assert settled["counts"]["total"] == 4
    messages = await broadcast_messages(runtime, broadcast["id"])
    assert sorted(m.contact_id for m in messages) == sorted(tagged + untagged)


async def test_recipients_over_the_hourly_limit_are_skipped_with_that_reason(settings, database, runtime):
    limited = Runtime.from_settings(
        settings.model_copy(update={"rate_limits": RateLimitSettings(api="100000/minute", per_recipient="2/hour")}),
        database=database,
    )
    app = create_app(limited.settings, runtime=limited)
    tenant = await make_tenant(limited, "Limited")
    transport = httpx.ASGITransport(app=app, client=("203.0.113.9", 50000))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        await add_contacts(limited, tenant, 2)
        busy = "+919800000000"
        await inbound(client, tenant, phone=busy)
        for n in range(2):
            response = await client.post(
                f"{API}/send", json={"to": busy, "type": "text", "text": f"Update {n}"}, headers=tenant.headers
            )
            assert response.status_code == 201, response.text

        broadcast = (await create(client, tenant)).json()
        settled = await run_until_settled(limited, client, tenant, broadcast["id"])

    assert settled["counts"]["sent"] == 1
    assert settled["skippedByReason"] == {"rate_limited": 1}


# --- what is refused before anything is written ----------------------------------------------------------------


async def broadcast_rows(runtime: Runtime) -> int:
    async with runtime.database.sessions() as session:
        return int(await session.scalar(select(func.count()).select_from(Broadcast)) or 0)


async def test_the_starter_plan_refuses_an_audience_over_1000_contacts(client, tenant, runtime):
    await add_contacts(runtime, tenant, 1001)

    refused = await create(client, tenant)

    body = assert_error(refused, 403, "plan_limit_exceeded")
    assert "1,000" in body["error"]
    assert "1,001" in body["error"]
    assert "Starter" in body["error"]
    assert await broadcast_rows(runtime) == 0
    counted = await client.post(f"{API}/broadcasts/audience", json={"tags": ["vip"]}, headers=tenant.headers)
    assert counted.json() == {"count": 1001, "planLimit": 1000}


async def test_the_starter_plan_allows_exactly_1000(client, tenant, runtime):
    await add_contacts(runtime, tenant, 1000)

    assert (await create(client, tenant)).status_code == 201


async def test_the_pro_plan_has_no_limit(client, runtime):
    pro = await make_tenant(runtime, "Big", plan="pro")
    await add_contacts(runtime, pro, 1001)

    created = await create(client, pro)

    assert created.status_code == 201, created.text
    assert created.json()["counts"]["total"] == 1001
    counted = await client.post(f"{API}/broadcasts/audience", json={"tags": ["vip"]}, headers=pro.headers)
    assert counted.json() == {"count": 1001, "planLimit": None}


async def test_an_audience_grown_past_the_plan_by_its_start_is_cancelled_with_the_reason(
    client, tenant, runtime, frozen_clock
):
    await add_contacts(runtime, tenant, 1000)
    later = (frozen_clock + timedelta(hours=1)).isoformat().replace("+00:00", "Z")
    broadcast = (await create(client, tenant, scheduledAt=later)).json()
    await add_contacts(runtime, tenant, 5, start=5000)

    clock.advance(timedelta(hours=1))
    settled = await run_until_settled(runtime, client, tenant, broadcast["id"])

    assert settled["status"] == "cancelled"
    assert "1,005" in settled["statusReason"]
    assert await broadcast_messages(runtime, broadcast["id"]) == []


async def test_bad_broadcasts_are_refused_and_write_nothing(client, tenant, other_tenant, runtime):
    [mine] = await add_contacts(runtime, tenant, 1)
    [theirs] = await add_contacts(runtime, other_tenant, 1, start=50)
    cases = [
        ({"audience": {}}, 400, None),
        ({"audience": {"all": True, "tags": ["vip"]}}, 400, None),
        ({"audience": {"tags": ["nobody"]}}, 400, "empty_audience"),
        ({"audience": {"contactIds": [mine, "ctc_missing"]}}, 404, "contact_not_found"),
        ({"audience": {"contactIds": [theirs]}}, 404, "contact_not_found"),
        ({"templateName": "no_such_template"}, 404, "template_not_found"),
        ({"language": "fr"}, 404, "template_not_found"),
        ({"components": []}, 400, "template_parameters_mismatch"),
        (
            {"components": [{"type": "body", "parameters": [{"type": "text", "text": "{{contact.nickname}}"}]}]},
            400,
            "unknown_contact_field",
        ),
        ({"scheduledAt": "2020-01-01T00:00:00Z"}, 400, "invalid_schedule"),
        ({"scheduledAt": "tomorrow"}, 400, None),
        ({"scheduledAt": "2030-01-01T10:00:00"}, 400, None),  # no time zone
        ({"components": [{"type": "body", "parameters": [{"type": "date_time", "date_time": "soon"}] * 2}]}, 400, None),
        ({"name": ""}, 400, None),
        ({"name": 42}, 400, None),
        ({"surprise": True}, 400, None),
    ]
    for overrides, status, code in cases:
        body = assert_error(await create(client, tenant, **overrides), status, code)
        if code == "contact_not_found":
            assert "ctc_missing" in body["error"] or theirs in body["error"]
    missing = await client.post(f"{API}/broadcasts", json={"name": "x"}, headers=tenant.headers)
    assert_error(missing, 400)
    assert await broadcast_rows(runtime) == 0


async def test_an_unapproved_template_is_refused(client, tenant, runtime):
    await add_template(runtime, tenant, "pending_one", "UTILITY", status="PENDING")
    await add_contacts(runtime, tenant, 1)

    refused = await create(client, tenant, templateName="pending_one", components=[])

    assert_error(refused, 400, "template_not_approved")


# --- scheduling ------------------------------------------------------------------------------------------------


async def test_a_scheduled_broadcast_waits_for_its_time(client, tenant, runtime, frozen_clock):
    await add_contacts(runtime, tenant, 2)
    at = frozen_clock + timedelta(hours=2)

    broadcast = (await create(client, tenant, scheduledAt=at.isoformat())).json()

    assert broadcast["status"] == "scheduled"
    assert broadcast["scheduledAt"] == "2026-11-24T12:00:00Z"
    await drain(runtime)
    clock.advance(timedelta(hours=1, minutes=59))
    await drain(runtime)
    waiting = await get(client, tenant, broadcast["id"])
    assert (waiting["status"], waiting["startedAt"], waiting["counts"]["sent"]) == ("scheduled", None, 0)
    assert await broadcast_messages(runtime, broadcast["id"]) == []

    clock.advance(timedelta(minutes=1))
    settled = await run_until_settled(runtime, client, tenant, broadcast["id"])

    assert settled["status"] == "completed"
    assert settled["startedAt"] == "2026-11-24T12:00:00Z"
    assert settled["counts"]["sent"] == 2


async def test_a_scheduled_broadcast_can_be_cancelled_before_it_starts(client, tenant, runtime, frozen_clock):
    await add_contacts(runtime, tenant, 2)
    broadcast = (await create(client, tenant, scheduledAt=(frozen_clock + timedelta(hours=1)).isoformat())).json()

    cancelled = await client.post(f"{API}/broadcasts/{broadcast['id']}/cancel", headers=tenant.headers)
    clock.advance(timedelta(hours=2))
    await drain(runtime)

    assert cancelled.json()["status"] == "cancelled"
    assert (await get(client, tenant, broadcast["id"]))["status"] == "cancelled"
    assert await broadcast_messages(runtime, broadcast["id"]) == []


# --- pause, resume, cancel -------------------------------------------------------------------------------------


async def queue_first_batch(runtime: Runtime) -> None:
    """One worker round: the dispatch job queues its first batch, then waits for the sender."""
    await Worker(runtime).run_once()


async def test_the_audience_is_queued_a_batch_at_a_time_at_the_connections_pace(client, tenant, runtime, frozen_clock):
    await add_contacts(runtime, tenant, 500)
    broadcast = (await create(client, tenant)).json()

    await queue_first_batch(runtime)

    # Two seconds of the default 80 messages/s are queued; the other recipients wait, written but pending.
    assert len(await broadcast_messages(runtime, broadcast["id"])) == 160
    pending = await client.get(f"{API}/broadcasts/{broadcast['id']}/recipients?status=pending", headers=tenant.headers)
    assert pending.json()["pagination"]["total"] == 340


async def test_pause_stops_sending_and_resume_sends_everyone_exactly_once(client, tenant, runtime, frozen_clock):
    ids = await add_contacts(runtime, tenant, 300)
    broadcast = (await create(client, tenant)).json()
    await queue_first_batch(runtime)

    paused = await client.post(f"{API}/broadcasts/{broadcast['id']}/pause", headers=tenant.headers)

    assert paused.status_code == 200, paused.text
    assert paused.json()["status"] == "paused"
    for _ in range(5):
        await drain(runtime)
        clock.advance(timedelta(seconds=3))
    during = await get(client, tenant, broadcast["id"])
    assert during["status"] == "paused"
    assert during["counts"]["sent"] == 0
    assert during["counts"]["queued"] == 300
    again = await client.post(f"{API}/broadcasts/{broadcast['id']}/pause", headers=tenant.headers)
    assert_error(again, 409, "invalid_broadcast_state")

    resumed = await client.post(f"{API}/broadcasts/{broadcast['id']}/resume", headers=tenant.headers)
    assert resumed.json()["status"] == "running"
    settled = await run_until_settled(runtime, client, tenant, broadcast["id"])

    assert settled["status"] == "completed"
    assert settled["counts"]["sent"] == 300
    messages = await broadcast_messages(runtime, broadcast["id"])
    assert sorted(m.contact_id for m in messages) == sorted(ids)
    assert all(m.whatsapp_message_id for m in messages)


async def test_cancel_stops_the_rest_and_counts_them_cancelled(client, tenant, runtime, frozen_clock):
    await add_contacts(runtime, tenant, 300)
    broadcast = (await create(client, tenant)).json()
    await queue_first_batch(runtime)

    cancelled = await client.post(f"{API}/broadcasts/{broadcast['id']}/cancel", headers=tenant.headers)
    for _ in range(3):
        await drain(runtime)
        clock.advance(timedelta(seconds=3))

    body = cancelled.json()
    assert body["status"] == "cancelled"
    assert body["cancelledAt"] == "2026-11-24T10:00:00Z"
    final = await get(client, tenant, broadcast["id"])
    assert final["counts"]["cancelled"] == 300
    assert (final["counts"]["sent"], final["counts"]["failed"], final["counts"]["queued"]) == (0, 0, 0)
    messages = await broadcast_messages(runtime, broadcast["id"])
    assert messages
    assert all(m.status == "failed" and m.whatsapp_message_id is None for m in messages)
    assert "cancelled" in (messages[0].error_message or "")
    assert_error(await client.post(f"{API}/broadcasts/{broadcast['id']}/resume", headers=tenant.headers), 409)
    assert_error(await client.post(f"{API}/broadcasts/{broadcast['id']}/cancel", headers=tenant.headers), 409)


async def test_an_opt_out_while_paused_holds_that_message_back(client, tenant, runtime, frozen_clock):
    await add_template(runtime, tenant, "november_sale", "MARKETING")
    await add_contacts(runtime, tenant, 3)
    broadcast = (await create(client, tenant, templateName="november_sale", components=[])).json()
    await queue_first_batch(runtime)
    await client.post(f"{API}/broadcasts/{broadcast['id']}/pause", headers=tenant.headers)

    await inbound(client, tenant, phone="+919800000001", text="STOP")
    await client.post(f"{API}/broadcasts/{broadcast['id']}/resume", headers=tenant.headers)
    settled = await run_until_settled(runtime, client, tenant, broadcast["id"])

    assert settled["status"] == "completed"
    assert (settled["counts"]["sent"], settled["counts"]["failed"], settled["counts"]["replied"]) == (2, 0, 0)
    assert settled["skippedByReason"] == {"opted_out": 1}
    held = [m for m in await broadcast_messages(runtime, broadcast["id"]) if m.status == "failed"]
    assert len(held) == 1
    assert held[0].whatsapp_message_id is None
    assert "opted in" in (held[0].error_message or "")


async def test_a_template_moved_to_marketing_skips_contacts_without_opt_in(client, tenant, runtime):
    await add_contacts(runtime, tenant, 2, opted_in=False)
    broadcast = (await create(client, tenant)).json()
    async with runtime.database.transaction() as session:
        template = await session.scalar(
            select(Template).where(Template.organization_id == tenant.organization_id, Template.name == "order_update")
        )
        assert template is not None
        template.category = "MARKETING"  # Meta's template_category_update, after the broadcast was created

    settled = await run_until_settled(runtime, client, tenant, broadcast["id"])

    assert settled["category"] == "MARKETING"
    assert settled["counts"]["sent"] == 0
    assert settled["skippedByReason"] == {"not_opted_in": 2}


async def test_pausing_a_completed_broadcast_changes_nothing(client, tenant, runtime):
    await add_contacts(runtime, tenant, 1)
    broadcast = (await create(client, tenant)).json()
    await run_until_settled(runtime, client, tenant, broadcast["id"])

    refused = await client.post(f"{API}/broadcasts/{broadcast['id']}/pause", headers=tenant.headers)

    body = assert_error(refused, 409, "invalid_broadcast_state")
    assert "completed" in body["error"]
    after = await get(client, tenant, broadcast["id"])
    assert (after["status"], after["pausedAt"]) == ("completed", None)


async def test_a_template_paused_by_meta_pauses_the_broadcast(client, tenant, runtime):
    await add_contacts(runtime, tenant, 2)
    broadcast = (await create(client, tenant)).json()
    async with runtime.database.transaction() as session:
        template = await session.scalar(select(Template).where(Template.name == "order_update"))
        assert template is not None
        template.status = "PAUSED"

    settled = await run_until_settled(runtime, client, tenant, broadcast["id"])

    assert settled["status"] == "paused"
    assert "PAUSED" in settled["statusReason"]
    assert settled["counts"]["queued"] == 2


# --- reading -----------------------------------------------------------------------------------------------------


async def test_recipients_are_paged_and_filtered(client, tenant, runtime):
    await add_contacts(runtime, tenant, 25)
    broadcast = (await create(client, tenant)).json()
    before = (await client.get(f"{API}/broadcasts/{broadcast['id']}/recipients", headers=tenant.headers)).json()
    assert before["pagination"]["total"] == 0  # written when it starts
    await run_until_settled(runtime, client, tenant, broadcast["id"])

    page = (
        await client.get(f"{API}/broadcasts/{broadcast['id']}/recipients?page=2&limit=10", headers=tenant.headers)
    ).json()

    assert page["pagination"] == {"page": 2, "limit": 10, "total": 25, "totalPages": 3}
    first = page["data"][0]
    assert first["phone"] == "+919800000010" or first["phone"].startswith("+9198")
    assert first["status"] in ("sent", "delivered", "read")
    assert first["messageId"].startswith("msg_")
    assert first["sentAt"] is not None
    none = await client.get(f"{API}/broadcasts/{broadcast['id']}/recipients?status=failed", headers=tenant.headers)
    assert none.json()["pagination"]["total"] == 0
    assert_error(
        await client.get(f"{API}/broadcasts/{broadcast['id']}/recipients?status=lost", headers=tenant.headers), 400
    )


async def test_replies_are_counted(client, tenant, runtime):
    await add_contacts(runtime, tenant, 2)
    broadcast = (await create(client, tenant)).json()
    await run_until_settled(runtime, client, tenant, broadcast["id"])

    await inbound(client, tenant, phone="+919800000001", text="Thanks!")
    await inbound(client, tenant, phone="+919800000001", text="When exactly?")

    after = await get(client, tenant, broadcast["id"])
    assert after["counts"]["replied"] == 1
    replied = (
        await client.get(f"{API}/broadcasts/{broadcast['id']}/recipients?status=replied", headers=tenant.headers)
    ).json()
    assert [r["phone"] for r in replied["data"]] == ["+919800000001"]
    assert replied["data"][0]["repliedAt"] is not None


async def test_listing_filters_by_status_and_hides_other_organizations(client, tenant, other_tenant, runtime):
    await add_contacts(runtime, tenant, 1)
    first = (await create(client, tenant, name="First")).json()
    await run_until_settled(runtime, client, tenant, first["id"])
    second = (await create(client, tenant, name="Second")).json()

    listed = (await client.get(f"{API}/broadcasts", headers=tenant.headers)).json()
    completed = (await client.get(f"{API}/broadcasts?status=completed", headers=tenant.headers)).json()
    theirs = (await client.get(f"{API}/broadcasts", headers=other_tenant.headers)).json()

    assert [b["name"] for b in listed["data"]] == ["Second", "First"]
    assert [b["id"] for b in completed["data"]] == [first["id"]]
    assert theirs["data"] == []
    for path in ("", "/recipients"):
        assert_error(await client.get(f"{API}/broadcasts/{second['id']}{path}", headers=other_tenant.headers), 404)
    for action in ("pause", "resume", "cancel"):
        response = await client.post(f"{API}/broadcasts/{second['id']}/{action}", headers=other_tenant.headers)
        assert_error(response, 404, "broadcast_not_found")


async def test_scopes_guard_broadcasts(client, runtime):
    reader = await make_tenant(runtime, "Reader", scopes=["broadcasts:read"])

    assert (await client.get(f"{API}/broadcasts", headers=reader.headers)).status_code == 200
    assert_error(await create(client, reader), 403)


# --- events --------------------------------------------------------------------------------------------------------


async def test_started_and_completed_events_reach_webhooks(client, tenant, runtime):
    # Only the name is looked up (from a table, never DNS); no delivery is attempted in this test.
    runtime.resolver = TableResolver({"hooks.example.com": ["93.184.215.14"]})
    endpoint = await client.post(
        f"{API}/webhooks",
        json={"url": "https://hooks.example.com/kaanha", "events": ["broadcast.started", "broadcast.completed"]},
        headers=tenant.headers,
    )
    assert endpoint.status_code == 201, endpoint.text
    await add_contacts(runtime, tenant, 2)
    broadcast = (await create(client, tenant)).json()

    await run_until_settled(runtime, client, tenant, broadcast["id"])

    async with runtime.database.sessions() as session:
        events = list(await session.scalars(select(Event).where(Event.type.like("broadcast.%")).order_by(Event.seq)))
        deliveries = await session.scalar(select(func.count()).select_from(WebhookDelivery))
    assert [e.type for e in events] == ["broadcast.started", "broadcast.completed"]
    assert events[1].data["id"] == broadcast["id"]
    assert events[1].data["counts"]["sent"] == 2
    assert deliveries == 2


# --- threads ------------------------------------------------------------------------------------------------


async def test_each_message_joins_its_contacts_thread_and_only_new_threads_are_announced(client, tenant, runtime):
    open_, resolved, new = await add_contacts(runtime, tenant, 3)
    earlier = now() - timedelta(days=3)
    threads = {
        "open": Conversation(id=new_id("cnv"), contact_id=open_, status="OPEN", last_message_at=earlier),
        "old resolved of open": Conversation(
            id=new_id("cnv"), contact_id=open_, status="RESOLVED", resolved_at=earlier, last_message_at=earlier
        ),
        "older resolved": Conversation(
            id=new_id("cnv"), contact_id=resolved, status="RESOLVED", resolved_at=earlier, last_message_at=earlier
        ),
        "latest resolved": Conversation(
            id=new_id("cnv"), contact_id=resolved, status="RESOLVED", resolved_at=earlier, last_message_at=earlier
        ),
    }
    async with runtime.database.transaction() as session:
        for offset, conversation in enumerate(threads.values()):
            conversation.organization_id = tenant.organization_id
            conversation.created_at = earlier + timedelta(hours=offset)
            session.add(conversation)

    broadcast = (await create(client, tenant)).json()
    settled = await run_until_settled(runtime, client, tenant, broadcast["id"])

    assert settled["counts"]["sent"] == 3
    by_contact = {m.contact_id: m for m in await broadcast_messages(runtime, broadcast["id"])}
    async with runtime.database.sessions() as session:
        conversations = {c.id: c for c in await session.scalars(select(Conversation))}
        contacts = {c.id: c for c in await session.scalars(select(Contact))}
        created = list(await session.scalars(select(Event).where(Event.type == "conversation.created")))
    assert by_contact[open_].conversation_id == threads["open"].id
    # Our own message joins the latest resolved thread without reopening it, as a single send does.
    assert by_contact[resolved].conversation_id == threads["latest resolved"].id
    assert conversations[threads["latest resolved"].id].status == "RESOLVED"
    opened = conversations[by_contact[new].conversation_id]
    assert opened.id not in {t.id for t in threads.values()}
    assert (opened.contact_id, opened.status, opened.unread_count) == (new, "OPEN", 0)
    assert len(conversations) == 5
    assert [(e.data["id"], e.data["contact"]["id"]) for e in created] == [(opened.id, new)]
    assert created[0].data["lastMessageAt"] is not None
    for contact_id, message in by_contact.items():
        thread = conversations[message.conversation_id]
        assert thread.last_message_at == message.created_at
        assert contacts[contact_id].last_message_at == message.created_at
    for untouched in ("old resolved of open", "older resolved"):
        assert conversations[threads[untouched].id].last_message_at == earlier
