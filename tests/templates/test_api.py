"""The templates API on the sandbox: create, review, list, get, delete, sync, and sending what was approved."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import func, select

from kaanha.events import types
from kaanha.kit.clock import clock
from kaanha.models import Event, Job, Template
from kaanha.runtime import Runtime
from kaanha.worker.runner import drain
from tests.conftest import API, Tenant, make_tenant
from tests.helpers import PHONE, assert_error
from tests.templates.api import SHAPE, SHIPPING, create, get, listed


async def counts(runtime: Runtime, tenant: Tenant) -> tuple[int, int]:
    """How many templates and jobs the organization has."""
    async with runtime.database.sessions() as session:
        templates = await session.scalar(
            select(func.count()).select_from(Template).where(Template.organization_id == tenant.organization_id)
        )
        jobs = await session.scalar(
            select(func.count()).select_from(Job).where(Job.organization_id == tenant.organization_id)
        )
    return int(templates or 0), int(jobs or 0)


async def template_events(runtime: Runtime, tenant: Tenant) -> list[Event]:
    async with runtime.database.sessions() as session:
        rows = await session.scalars(
            select(Event)
            .where(Event.organization_id == tenant.organization_id, Event.type == types.TEMPLATE_UPDATED)
            .order_by(Event.seq)
        )
        return list(rows)


async def review_passes(runtime: Runtime) -> None:
    """Let the sandbox's review wait run out, then run the due jobs."""
    clock.advance(timedelta(seconds=runtime.settings.sandbox.template_review_seconds))
    await drain(runtime)


# --- creating and the sandbox's review ------------------------------------------------------------------


async def test_a_new_template_is_pending_then_approved_by_the_sandboxs_review(client, tenant, runtime, frozen_clock):
    created = await create(client, tenant, SHIPPING)
    assert set(created) == SHAPE
    assert created["status"] == "PENDING"
    assert created["parameterFormat"] == "POSITIONAL"
    assert created["rejectedReason"] is None
    assert created["createdAt"] == "2026-11-24T10:00:00Z"
    assert [c["type"] for c in created["components"]] == ["HEADER", "BODY", "FOOTER", "BUTTONS"]
    assert await get(client, tenant, created["id"]) == created

    # Not before the review's wait (5 s by default).
    clock.advance(timedelta(seconds=4))
    await drain(runtime)
    assert (await get(client, tenant, created["id"]))["status"] == "PENDING"
    assert await template_events(runtime, tenant) == []

    clock.advance(timedelta(seconds=1))
    await drain(runtime)
    approved = await get(client, tenant, created["id"])
    assert approved["status"] == "APPROVED"
    assert approved["updatedAt"] == "2026-11-24T10:00:05Z"
    (event,) = await template_events(runtime, tenant)
    assert event.data == approved


async def test_the_review_wait_is_a_setting(client, tenant, runtime, frozen_clock):
    runtime.settings.sandbox.template_review_seconds = 60
    created = await create(client, tenant, SHIPPING)
    clock.advance(timedelta(seconds=59))
    await drain(runtime)
    assert (await get(client, tenant, created["id"]))["status"] == "PENDING"
    clock.advance(timedelta(seconds=1))
    await drain(runtime)
    assert (await get(client, tenant, created["id"]))["status"] == "APPROVED"


@pytest.mark.parametrize(
    ("category", "text", "reason"),
    [
        ("UTILITY", "{{1}}, your order has shipped and arrives soon.", "INVALID_FORMAT"),
        ("UTILITY", "Your order has shipped: get 10% off your next order!", "INCORRECT_CATEGORY"),
        ("MARKETING", "Our summer sale is on: see https://bit.ly/acme now.", "SCAM"),
    ],
)
async def test_the_sandboxs_review_rejects_with_metas_reason(
    client, tenant, runtime, frozen_clock, category, text, reason
):
    example = {"example": {"body_text": [["Asha"]]}} if "{{1}}" in text else {}
    body = {
        "name": "promo",
        "language": "en",
        "category": category,
        "components": [{"type": "BODY", "text": text, **example}],
    }
    created = await create(client, tenant, body)
    await review_passes(runtime)
    rejected = await get(client, tenant, created["id"])
    assert rejected["status"] == "REJECTED"
    assert rejected["rejectedReason"].startswith(f"{reason}: ")
    (event,) = await template_events(runtime, tenant)
    assert event.data == rejected


async def test_an_approved_template_can_be_sent_with_its_parameters(client, tenant, runtime, frozen_clock):
    created = await create(client, tenant, SHIPPING)
    send = {"to": PHONE, "type": "template", "templateName": "shipping_update", "language": "en_US"}
    components = [
        {"type": "header", "parameters": [{"type": "text", "text": "#7"}]},
        {"type": "body", "parameters": [{"type": "text", "text": "Asha"}, {"type": "text", "text": "#7"}]},
        {"type": "button", "sub_type": "url", "index": "0", "parameters": [{"type": "text", "text": "7"}]},
    ]
    pending = await client.post(f"{API}/send", json={**send, "components": components}, headers=tenant.headers)
    assert "is PENDING" in assert_error(pending, 400, "template_not_approved")["error"]

    await review_passes(runtime)
    assert (await get(client, tenant, created["id"]))["status"] == "APPROVED"
    missing_url = await client.post(f"{API}/send", json={**send, "components": components[:2]}, headers=tenant.headers)
    assert (
        "button 0 (URL) needs its URL variable"
        in assert_error(missing_url, 400, "template_parameters_mismatch")["error"]
    )
    sent = await client.post(f"{API}/send", json={**send, "components": components}, headers=tenant.headers)
    assert sent.status_code == 201, sent.text
    assert (
        sent.json()["content"]["preview"]
        == "Order #7\nHi Asha, your order #7 has shipped and arrives soon.\nAcme Store"
    )


async def test_named_templates_are_created_and_sent_by_parameter_name(client, tenant, runtime, frozen_clock):
    body = {
        "name": "welcome",
        "language": "en",
        "category": "UTILITY",
        "parameterFormat": "NAMED",
        "components": [
            {
                "type": "BODY",
                "text": "Welcome {{first_name}}! Your member number is {{number}} from today.",
                "example": {
                    "body_text_named_params": [
                        {"param_name": "first_name", "example": "Asha"},
                        {"param_name": "number", "example": "42"},
                    ]
                },
            }
        ],
    }
    assert (await create(client, tenant, body))["parameterFormat"] == "NAMED"
    await review_passes(runtime)
    parameters = [
        {"type": "text", "text": "42", "parameter_name": "number"},
        {"type": "text", "text": "Asha", "parameter_name": "first_name"},
    ]
    send = {"to": PHONE, "type": "template", "templateName": "welcome", "language": "en"}
    sent = await client.post(
        f"{API}/send", json={**send, "components": [{"type": "body", "parameters": parameters}]}, headers=tenant.headers
    )
    assert sent.status_code == 201, sent.text
    assert sent.json()["content"]["preview"] == "Welcome Asha! Your member number is 42 from today."


# --- bad input writes nothing ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"name": "Shipping Update"}, "name"),
        ({"language": "English"}, "language"),
        ({"category": "PROMOTIONAL"}, "category"),
        ({"parameterFormat": "KEYED"}, "parameterFormat"),
        ({"components": []}, "components"),
        ({"components": [{"type": "BODY", "text": "x" * 1025}]}, "components[0] (BODY).text"),
        ({"components": [{"type": "BODY", "text": "Hi {{1}} there"}]}, "components[0] (BODY).example"),
        ({"components": [SHIPPING["components"][1], {"type": "FOOTER", "text": "Order {{1}}"}]}, "FOOTER"),
        (
            {
                "components": [
                    SHIPPING["components"][1],
                    {"type": "BUTTONS", "buttons": [{"type": "QUICK_REPLY", "text": "y"}] * 11},
                ]
            },
            "components[1] (BUTTONS).buttons",
        ),
        ({"colour": "red"}, "colour"),
        ({"components": "BODY"}, "components"),
    ],
)
async def test_bad_input_answers_400_naming_the_field_and_writes_nothing(client, tenant, runtime, change, field):
    before = await counts(runtime, tenant)
    response = await client.post(f"{API}/templates", json={**SHIPPING, **change}, headers=tenant.headers)
    assert field in assert_error(response, 400)["error"]
    assert await counts(runtime, tenant) == before


async def test_the_same_name_and_language_is_a_conflict(client, tenant, runtime):
    await create(client, tenant, SHIPPING)
    before = await counts(runtime, tenant)
    response = await client.post(f"{API}/templates", json=SHIPPING, headers=tenant.headers)
    assert "already exists in en_US" in assert_error(response, 409, "duplicate_template")["error"]
    assert await counts(runtime, tenant) == before
    # Another language of the same name is another template.
    assert (await create(client, tenant, {**SHIPPING, "language": "hi"}))["language"] == "hi"
    # And another organization may use the same name.
    other = await make_tenant(runtime, "Globex")
    await create(client, other, SHIPPING)


async def test_a_retry_with_the_same_idempotency_key_creates_one_template(client, tenant, runtime):
    headers = {**tenant.headers, "Idempotency-Key": "shipping-1"}
    first = await client.post(f"{API}/templates", json=SHIPPING, headers=headers)
    again = await client.post(f"{API}/templates", json=SHIPPING, headers=headers)
    assert first.status_code == again.status_code == 201
    assert first.json() == again.json()
    assert (await listed(client, tenant, "?search=shipping"))["pagination"]["total"] == 1


# --- listing ---------------------------------------------------------------------------------------------


async def test_the_list_filters_searches_and_pages(client, tenant, runtime, frozen_clock):
    samples = await listed(client, tenant)
    assert [t["name"] for t in samples["data"]] == ["appointment_reminder", "hello_world", "order_update"]
    assert samples["pagination"] == {"page": 1, "limit": 20, "total": 3, "totalPages": 1}
    await create(client, tenant, SHIPPING)
    await create(client, tenant, {**SHIPPING, "name": "summer_sale", "category": "MARKETING", "language": "en"})

    pending = await listed(client, tenant, "?status=PENDING")
    assert [t["name"] for t in pending["data"]] == ["shipping_update", "summer_sale"]
    assert [t["name"] for t in (await listed(client, tenant, "?status=approved"))["data"]] == [
        "appointment_reminder",
        "hello_world",
        "order_update",
    ]
    assert [t["name"] for t in (await listed(client, tenant, "?category=MARKETING"))["data"]] == ["summer_sale"]
    assert [t["name"] for t in (await listed(client, tenant, "?language=en"))["data"]] == [
        "appointment_reminder",
        "summer_sale",
    ]
    assert [t["name"] for t in (await listed(client, tenant, "?search=UPDATE"))["data"]] == [
        "order_update",
        "shipping_update",
    ]
    # `_` is a character of the name, not a wildcard.
    assert [t["name"] for t in (await listed(client, tenant, "?search=r_u"))["data"]] == ["order_update"]
    assert (await listed(client, tenant, "?search=nothing"))["data"] == []
    both = await listed(client, tenant, "?status=PENDING&category=UTILITY&language=en_US")
    assert [t["name"] for t in both["data"]] == ["shipping_update"]

    second = await listed(client, tenant, "?limit=2&page=2")
    assert [t["name"] for t in second["data"]] == ["order_update", "shipping_update"]
    assert second["pagination"] == {"page": 2, "limit": 2, "total": 5, "totalPages": 3}
    assert all(set(t) == SHAPE for t in second["data"])


@pytest.mark.parametrize("query", ["?status=LIVE", "?category=PROMO", "?limit=0", "?limit=101", "?page=0"])
async def test_bad_list_queries_answer_400(client, tenant, query):
    assert_error(await client.get(f"{API}/templates{query}", headers=tenant.headers), 400)


# --- deleting ---------------------------------------------------------------------------------------------


async def test_deleting_a_template_answers_204_and_it_is_gone(client, tenant, runtime, frozen_clock):
    created = await create(client, tenant, SHIPPING)
    response = await client.delete(f"{API}/templates/{created['id']}", headers=tenant.headers)
    assert response.status_code == 204, response.text
    assert_error(
        await client.get(f"{API}/templates/{created['id']}", headers=tenant.headers), 404, "template_not_found"
    )
    assert_error(await client.delete(f"{API}/templates/{created['id']}", headers=tenant.headers), 404)
    # Its review, still queued, finds nothing to decide.
    await review_passes(runtime)
    assert await template_events(runtime, tenant) == []
    assert (await listed(client, tenant, "?search=shipping"))["data"] == []


# --- tenancy and scopes -----------------------------------------------------------------------------------


async def test_another_organizations_template_is_not_found(client, tenant, other_tenant):
    theirs = await create(client, other_tenant, SHIPPING)
    for method in ("GET", "DELETE"):
        response = await client.request(method, f"{API}/templates/{theirs['id']}", headers=tenant.headers)
        assert_error(response, 404, "template_not_found")
    assert "shipping_update" not in (await client.get(f"{API}/templates", headers=tenant.headers)).text
    assert (await get(client, other_tenant, theirs["id"]))["name"] == "shipping_update"


async def test_reading_and_writing_need_their_scopes(client, runtime):
    reader = await make_tenant(runtime, "Readers", scopes=["templates:read"])
    assert (await client.get(f"{API}/templates", headers=reader.headers)).status_code == 200
    for method, path in (("POST", "/templates"), ("POST", "/templates/sync"), ("DELETE", "/templates/tpl_x")):
        response = await client.request(method, f"{API}{path}", json=SHIPPING, headers=reader.headers)
        assert_error(response, 403, "insufficient_scope")
    writer = await make_tenant(runtime, "Writers", scopes=["templates:write"])
    assert_error(await client.get(f"{API}/templates", headers=writer.headers), 403, "insufficient_scope")


# --- sync on the sandbox ----------------------------------------------------------------------------------


async def test_sync_on_the_sandbox_changes_nothing(client, tenant):
    response = await client.post(f"{API}/templates/sync", headers=tenant.headers)
    assert response.status_code == 200, response.text
    assert response.json() == {"created": 0, "updated": 0, "deleted": 0, "total": 3}
