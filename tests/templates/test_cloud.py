"""Templates on the Cloud API, against the fake Graph API: submitted to Meta, deleted there, and synced."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import select, update

from kaanha.events import types
from kaanha.kit.clock import clock, now
from kaanha.kit.ids import new_id
from kaanha.models import Event, Job, Template, WhatsAppConnection
from kaanha.templates import meta
from kaanha.templates.rules import NewTemplate
from kaanha.templates.sync import SYNC_JOB, apply_remote, claim_due_syncs
from kaanha.worker.runner import run_periodic
from tests.conftest import API, Tenant, make_tenant
from tests.helpers import assert_error
from tests.templates.api import SHIPPING, create, get, listed
from tests.whatsapp.cloud import CUSTOMER, WABA_ID, Cloud, cloud_connection, new_fake

RECEIPT = {
    "type": "BODY",
    "text": "Hi {{1}}, your receipt for order {{2}} is ready to view.",
    "example": {"body_text": [["Asha", "#1"]]},
}


@pytest.fixture
def fake():
    return new_fake(template_review_seconds=0.05)


@pytest.fixture
async def cloud(runtime, client, tenant, fake):
    async with cloud_connection(runtime, client, tenant, fake) as connected:
        await connected.settle()  # the first sync, queued by connecting
        yield connected


async def stored(cloud: Cloud, name: str, language: str = "en_US") -> Template | None:
    async with cloud.runtime.database.sessions() as session:
        found: Template | None = await session.scalar(
            select(Template).where(
                Template.organization_id == cloud.tenant.organization_id,
                Template.name == name,
                Template.language == language,
            )
        )
        return found


async def template_events(cloud: Cloud) -> list[Event]:
    async with cloud.runtime.database.sessions() as session:
        rows = await session.scalars(
            select(Event)
            .where(Event.organization_id == cloud.tenant.organization_id, Event.type == types.TEMPLATE_UPDATED)
            .order_by(Event.seq)
        )
        return list(rows)


async def sync(cloud: Cloud) -> dict[str, Any]:
    response = await cloud.client.post(f"{API}/templates/sync", headers=cloud.tenant.headers)
    assert response.status_code == 200, response.text
    summary: dict[str, Any] = response.json()
    return summary


# --- connecting brings Meta's templates in ----------------------------------------------------------------


async def test_connecting_syncs_metas_templates_in_place_of_the_sandboxs(cloud, client, tenant):
    templates = (await listed(client, tenant))["data"]
    assert [(t["name"], t["status"]) for t in templates] == [("order_update", "APPROVED")]
    row = await stored(cloud, "order_update")
    assert row is not None
    assert row.external_id == cloud.fake.template(WABA_ID, "order_update", "en_US").id
    async with cloud.runtime.database.sessions() as session:
        connection = await session.get(WhatsAppConnection, tenant.organization_id)
    assert connection is not None
    assert connection.templates_synced_at is not None


# --- creating submits to Meta first -----------------------------------------------------------------------


async def test_a_new_template_is_submitted_to_meta_and_approved_by_its_webhook(cloud, client, tenant):
    created = await create(client, tenant, SHIPPING)
    assert created["status"] == "PENDING"
    at_meta = cloud.fake.template(WABA_ID, "shipping_update", "en_US")
    assert at_meta is not None
    assert at_meta.spec.components == created["components"]
    assert (await stored(cloud, "shipping_update")).external_id == at_meta.id  # type: ignore[union-attr]

    await asyncio.sleep(0.1)  # the fake's review
    await cloud.settle()
    approved = await get(client, tenant, created["id"])
    assert approved["status"] == "APPROVED"
    (event,) = await template_events(cloud)
    assert event.data == approved

    # Approved at Meta, it can be sent through Meta, its URL button filled.
    await cloud.customer_writes("Hello")
    message = await cloud.send(
        {
            "to": f"+{CUSTOMER}",
            "type": "template",
            "templateName": "shipping_update",
            "language": "en_US",
            "components": [
                {"type": "header", "parameters": [{"type": "text", "text": "#7"}]},
                {"type": "body", "parameters": [{"type": "text", "text": "Asha"}, {"type": "text", "text": "#7"}]},
                {"type": "button", "sub_type": "url", "index": 0, "parameters": [{"type": "text", "text": "7"}]},
            ],
        }
    )
    await cloud.settle()
    assert (await cloud.message(message["id"]))["status"] in ("sent", "delivered", "read")
    (accepted,) = cloud.fake.sent_by_callback_data()[message["id"]]
    assert accepted.body["template"]["components"][2] == {
        "type": "button",
        "sub_type": "url",
        "index": "0",
        "parameters": [{"type": "text", "text": "7"}],
    }


async def test_a_named_template_from_meta_is_sent_by_parameter_name(cloud):
    cloud.fake.add_template(
        WABA_ID,
        name="welcome",
        language="en",
        category="UTILITY",
        parameter_format="NAMED",
        components=[
            {
                "type": "BODY",
                "text": "Welcome {{first_name}}, your number is {{number}}.",
                "example": {
                    "body_text_named_params": [
                        {"param_name": "first_name", "example": "Asha"},
                        {"param_name": "number", "example": "42"},
                    ]
                },
            }
        ],
    )
    await sync(cloud)
    parameters = [
        {"type": "text", "text": "42", "parameter_name": "number"},
        {"type": "text", "text": "Asha", "parameter_name": "first_name"},
    ]
    message = await cloud.send(
        {
            "to": f"+{CUSTOMER}",
            "type": "template",
            "templateName": "welcome",
            "language": "en",
            "components": [{"type": "body", "parameters": parameters}],
        }
    )
    assert message["content"]["preview"] == "Welcome Asha, your number is 42."
    await cloud.settle()
    assert (await cloud.message(message["id"]))["status"] in ("sent", "delivered", "read")


async def test_metas_refusal_answers_400_with_its_words_and_stores_nothing(cloud, client, tenant, runtime):
    other = await make_tenant(runtime, "Globex")
    body = cloud.connection_body(phoneNumberId="106540352242999", wabaId="999999")
    cloud.fake.add_phone_number(
        "106540352242999", display_phone_number="+1 555-010-0999", verified_name="G", waba_id="1"
    )
    assert (await client.put(f"{API}/connection", json=body, headers=other.headers)).status_code == 200
    before = (await listed(client, other))["pagination"]["total"]
    response = await client.post(f"{API}/templates", json=SHIPPING, headers=other.headers)
    error = assert_error(response, 400, "template_rejected_by_meta")["error"]
    assert "Meta refused template 'shipping_update' (100)" in error
    assert "999999" in error
    assert (await listed(client, other))["pagination"]["total"] == before


async def test_metas_words_for_the_business_are_preferred(runtime, tenant):
    """Meta's `error_user_msg` says what to change; it is what the API answers when Meta gives one."""
    refusal = {
        "error": {
            "message": "Invalid parameter",
            "type": "OAuthException",
            "code": 100,
            "error_subcode": 2388043,
            "error_user_title": "Message template has invalid content",
            "error_user_msg": "The body contains a variable with no sample value.",
            "fbtrace_id": "Ab",
        }
    }
    http = httpx.AsyncClient(transport=httpx.MockTransport(lambda _: httpx.Response(400, json=refusal)))
    runtime.http = http
    connection = WhatsAppConnection(
        organization_id=tenant.organization_id,
        type="cloud_api",
        waba_id="1",
        access_token_encrypted=runtime.secret_box.encrypt("t"),
    )
    new = NewTemplate("promo", "en", "MARKETING", "POSITIONAL", [{"type": "BODY", "text": "Hello"}])
    with pytest.raises(meta.TemplateRejectedByMeta, match="The body contains a variable with no sample value"):
        await meta.submit(runtime, connection, new)
    await http.aclose()


async def test_a_template_meta_already_has_is_a_conflict(cloud, client, tenant):
    cloud.fake.add_template(WABA_ID, name="shipping_update", language="en_US", category="UTILITY", components=[RECEIPT])
    response = await client.post(f"{API}/templates", json=SHIPPING, headers=tenant.headers)
    assert "POST /templates/sync" in assert_error(response, 409, "duplicate_template")["error"]
    assert await stored(cloud, "shipping_update") is None


async def test_an_unreachable_meta_answers_502_and_stores_nothing(cloud, client, tenant, runtime):
    runtime.settings.graph_api_url = "http://127.0.0.1:9"  # discard port: nothing listens
    response = await client.post(f"{API}/templates", json=SHIPPING, headers=tenant.headers)
    error = assert_error(response, 502, "meta_unreachable")["error"]
    assert "nothing was created" in error
    assert "sync" in error
    assert await stored(cloud, "shipping_update") is None


async def test_local_rules_run_before_meta_is_asked(cloud, client, tenant):
    bad = {**SHIPPING, "components": [{"type": "BODY", "text": "x" * 1025}]}
    assert_error(await client.post(f"{API}/templates", json=bad, headers=tenant.headers), 400, "invalid_template")
    assert cloud.fake.template(WABA_ID, "shipping_update", "en_US") is None


# --- deleting ---------------------------------------------------------------------------------------------


async def test_deleting_removes_the_template_at_meta_then_here_in_that_language_only(cloud, client, tenant):
    english = await create(client, tenant, SHIPPING)
    await create(client, tenant, {**SHIPPING, "language": "hi"})
    response = await client.delete(f"{API}/templates/{english['id']}", headers=tenant.headers)
    assert response.status_code == 204, response.text
    assert cloud.fake.template(WABA_ID, "shipping_update", "en_US") is None
    assert cloud.fake.template(WABA_ID, "shipping_update", "hi") is not None
    assert await stored(cloud, "shipping_update") is None
    assert await stored(cloud, "shipping_update", "hi") is not None


async def test_a_delete_meta_refuses_keeps_the_template(cloud, client, tenant):
    created = await create(client, tenant, SHIPPING)
    cloud.fake._templates.delete(WABA_ID, "shipping_update")  # gone from Meta behind our back
    response = await client.delete(f"{API}/templates/{created['id']}", headers=tenant.headers)
    assert "POST /templates/sync" in assert_error(response, 400, "meta_refused")["error"]
    assert (await get(client, tenant, created["id"]))["name"] == "shipping_update"
    assert (await sync(cloud))["deleted"] == 1
    assert_error(await client.get(f"{API}/templates/{created['id']}", headers=tenant.headers), 404)


# --- syncing ----------------------------------------------------------------------------------------------


async def test_sync_creates_updates_and_deletes_to_match_meta_and_emits_status_changes(
    cloud, client, tenant, monkeypatch
):
    monkeypatch.setattr(meta, "PAGE_SIZE", 2)  # several pages from few templates
    for name in ("receipt_one", "receipt_two", "receipt_three"):
        cloud.fake.add_template(WABA_ID, name=name, language="en", category="UTILITY", components=[RECEIPT])
    cloud.fake.add_template(
        WABA_ID, name="receipt_four", language="en", category="MARKETING", components=[RECEIPT], status="REJECTED"
    )
    cloud.fake.template(WABA_ID, "order_update", "en_US").status = "PAUSED"  # type: ignore[union-attr]
    async with cloud.runtime.database.transaction() as session:
        session.add(
            Template(
                id=new_id("tpl"),
                organization_id=tenant.organization_id,
                name="only_here",
                language="en",
                category="UTILITY",
                status="APPROVED",
                components=[RECEIPT],
            )
        )

    assert await sync(cloud) == {"created": 4, "updated": 1, "deleted": 1, "total": 5}

    names = [(t["name"], t["status"], t["category"]) for t in (await listed(client, tenant))["data"]]
    assert names == [
        ("order_update", "PAUSED", "UTILITY"),
        ("receipt_four", "REJECTED", "MARKETING"),
        ("receipt_one", "APPROVED", "UTILITY"),
        ("receipt_three", "APPROVED", "UTILITY"),
        ("receipt_two", "APPROVED", "UTILITY"),
    ]
    (paused,) = await template_events(cloud)
    assert paused.data["name"] == "order_update"
    assert paused.data["status"] == "PAUSED"
    row = await stored(cloud, "receipt_one", "en")
    assert row is not None
    assert row.external_id == cloud.fake.template(WABA_ID, "receipt_one", "en").id  # type: ignore[union-attr]
    assert row.components == [RECEIPT]

    # Nothing changed at Meta: nothing changes here, and no event.
    assert await sync(cloud) == {"created": 0, "updated": 0, "deleted": 0, "total": 5}
    assert len(await template_events(cloud)) == 1


async def test_sync_errors_change_nothing(cloud, client, tenant, runtime):
    before = (await listed(client, tenant))["data"]
    cloud.fake.access_token = "rotated-token"
    refused = await client.post(f"{API}/templates/sync", headers=tenant.headers)
    assert "(190)" in assert_error(refused, 400, "meta_refused")["error"]
    runtime.settings.graph_api_url = "http://127.0.0.1:9"
    assert_error(await client.post(f"{API}/templates/sync", headers=tenant.headers), 502, "meta_unreachable")
    assert (await listed(client, tenant))["data"] == before


async def test_the_scheduled_sync_job_brings_changes_in(cloud, client, tenant):
    cloud.fake.add_template(WABA_ID, name="receipt_one", language="en", category="UTILITY", components=[RECEIPT])
    async with cloud.runtime.database.transaction() as session:
        await session.execute(
            update(WhatsAppConnection)
            .where(WhatsAppConnection.organization_id == tenant.organization_id)
            .values(templates_synced_at=now() - timedelta(minutes=16))
        )
    await run_periodic(cloud.runtime, only="templates.sync_due")
    await cloud.settle()
    assert [t["name"] for t in (await listed(client, tenant))["data"]] == ["order_update", "receipt_one"]


# --- the 15-minute round ----------------------------------------------------------------------------------


async def connected(runtime, name: str, **values: Any) -> Tenant:
    tenant = await make_tenant(runtime, name)
    async with runtime.database.transaction() as session:
        await session.execute(
            update(WhatsAppConnection)
            .where(WhatsAppConnection.organization_id == tenant.organization_id)
            .values(**{"type": "cloud_api", "waba_id": f"waba-{name}", **values})
        )
    return tenant


async def sync_jobs(runtime) -> list[str | None]:
    async with runtime.database.sessions() as session:
        rows = await session.scalars(select(Job.organization_id).where(Job.kind == SYNC_JOB))
        return sorted(row or "" for row in rows)


async def test_the_periodic_check_claims_only_connections_due_a_sync(runtime, frozen_clock):
    never = await connected(runtime, "Never")
    stale = await connected(runtime, "Stale", templates_synced_at=now() - timedelta(minutes=16))
    await connected(runtime, "Fresh", templates_synced_at=now() - timedelta(minutes=5))
    await connected(runtime, "Down", connected=False)
    await make_tenant(runtime, "Sandbox")

    await run_periodic(runtime, only="templates.sync_due")
    assert await sync_jobs(runtime) == sorted([never.organization_id, stale.organization_id])

    # Claimed: the next minute's check finds nothing due, until 15 minutes have passed.
    await run_periodic(runtime, only="templates.sync_due")
    assert len(await sync_jobs(runtime)) == 2
    clock.advance(timedelta(minutes=11))
    await run_periodic(runtime, only="templates.sync_due")
    assert len(await sync_jobs(runtime)) == 3  # "Fresh", last synced 16 minutes ago now


async def test_checks_running_side_by_side_claim_each_connection_once(runtime, frozen_clock):
    for index in range(6):
        await connected(runtime, f"Shop {index}")

    async def check() -> list[str]:
        async with runtime.database.transaction() as session:
            return await claim_due_syncs(session)

    claimed = await asyncio.gather(*(check() for _ in range(3)), return_exceptions=True)
    ids = [organization_id for batch in claimed if isinstance(batch, list) for organization_id in batch]
    assert sorted(ids) == sorted(set(ids))
    assert len(await sync_jobs(runtime)) == len(ids)
    # A check that lost to a busy SQLite claims what is left on its next run.
    await run_periodic(runtime, only="templates.sync_due")
    assert len(await sync_jobs(runtime)) == 6


async def test_a_sync_keeps_a_template_created_while_it_was_fetching(runtime, tenant):
    fetched_at = now()
    clock.freeze(fetched_at + timedelta(seconds=1))
    try:
        async with runtime.database.transaction() as session:
            session.add(
                Template(
                    id=new_id("tpl"),
                    organization_id=tenant.organization_id,
                    name="just_created",
                    language="en_US",
                    category="UTILITY",
                    status="PENDING",
                    components=[{"type": "BODY", "text": "Your parcel is on its way to you today."}],
                )
            )
        async with runtime.database.transaction() as session:
            # Meta's list was asked for before the template existed, so it isn't in it.
            summary = await apply_remote(
                session, organization_id=tenant.organization_id, remote=[], fetched_at=fetched_at
            )
        async with runtime.database.sessions() as session:
            names = set(
                await session.scalars(select(Template.name).where(Template.organization_id == tenant.organization_id))
            )
    finally:
        clock.unfreeze()
    assert "just_created" in names
    assert "hello_world" not in names  # older than the fetch and not at Meta: gone
    assert summary.deleted == 3
