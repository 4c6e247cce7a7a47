"""Webhook endpoint rules: safe public targets, known event types, a limit per organization, secrets
encrypted at rest and shown once, rotation with a day of overlap, and the log of delivery attempts."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from datetime import timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from kaanha.errors import InvalidRequest
from kaanha.kit.clock import now
from kaanha.kit.ids import new_id
from kaanha.kit.pagination import Page, PageRequest
from kaanha.kit.urls import UnsafeUrl, check_public_url
from kaanha.models import WebhookAttempt, WebhookEndpoint
from kaanha.runtime import Runtime
from kaanha.webhooks import dispatcher
from kaanha.webhooks.fanout import forget_endpoints
from kaanha.webhooks.repository import (
    WebhookAttemptRepository,
    WebhookDeliveryNotFound,
    WebhookDeliveryRepository,
    WebhookEndpointRepository,
)
from kaanha.webhooks.schemas import (
    AttemptStatus,
    WebhookAttemptOut,
    WebhookEndpointCreate,
    WebhookEndpointCreated,
    WebhookEndpointOut,
    WebhookEndpointUpdate,
    WebhookSecretRotated,
    attempt_out,
    endpoint_out,
)
from kaanha.webhooks.signing import new_secret

MAX_ENDPOINTS_PER_ORGANIZATION = 20
# Receivers verify with the old secret until they have switched; both sign meanwhile.
SECRET_OVERLAP = timedelta(hours=24)
# A name server that never answers must not hold the request (the lookup thread is left to finish).
RESOLVE_TIMEOUT_SECONDS = 5.0


class TooManyWebhookEndpoints(InvalidRequest):
    code = "too_many_webhook_endpoints"


async def check_target_url(runtime: Runtime, url: str) -> None:
    """Refuse a target that is, or resolves to, a private, loopback, link-local or metadata address.

    `KAANHA_ALLOW_PRIVATE_URLS` lifts the address rules (local development, tests); the host is then
    not looked up at all. The check is repeated at each delivery, since DNS answers change.
    """
    allow_private = runtime.settings.allow_private_urls
    if allow_private:
        check_public_url(url, allow_private=True)
        return
    resolver = runtime.resolver

    def resolve(host: str) -> Iterable[str]:
        try:
            return list(resolver(host))
        except (UnicodeError, ValueError) as error:  # a name IDNA can't encode is unresolvable too
            raise OSError(str(error)) from None

    try:
        await asyncio.wait_for(
            asyncio.to_thread(check_public_url, url, allow_private=False, resolver=resolve),
            timeout=RESOLVE_TIMEOUT_SECONDS,
        )
    except TimeoutError:
        raise UnsafeUrl(f"the host of '{url}' could not be resolved in time; check the name") from None


async def list_endpoints(session: AsyncSession, *, organization_id: str, page: PageRequest) -> Page[WebhookEndpointOut]:
    repository = WebhookEndpointRepository(session, organization_id)
    endpoints, total = await repository.page(repository.listing(), page)
    return Page.of([endpoint_out(endpoint) for endpoint in endpoints], request=page, total=total)


async def get_endpoint(session: AsyncSession, *, organization_id: str, endpoint_id: str) -> WebhookEndpointOut:
    return endpoint_out(await WebhookEndpointRepository(session, organization_id).get(endpoint_id))


async def create_endpoint(
    session: AsyncSession, *, runtime: Runtime, organization_id: str, data: WebhookEndpointCreate
) -> WebhookEndpointCreated:
    """Create an endpoint and answer it with its signing secret, which is stored only encrypted.

    400 for an unsafe target or an organization already at MAX_ENDPOINTS_PER_ORGANIZATION; nothing is
    written then (a refusal after the insert rolls the whole request back).
    """
    repository = WebhookEndpointRepository(session, organization_id)
    if await repository.count() >= MAX_ENDPOINTS_PER_ORGANIZATION:
        raise _too_many()
    await check_target_url(runtime, data.url)
    secret = new_secret()
    moment = now()
    await repository.lock_organization()
    endpoint = repository.add(
        WebhookEndpoint(
            id=new_id("whe"),
            url=data.url,
            events=list(data.events),
            description=data.description,
            enabled=data.enabled,
            secret_encrypted=runtime.secret_box.encrypt(secret),
            created_at=moment,
            updated_at=moment,
        )
    )
    await session.flush()
    # Counted again under the lock (PostgreSQL) or SQLite's write lock: concurrent creations can't pass 20.
    if await repository.count() > MAX_ENDPOINTS_PER_ORGANIZATION:
        raise _too_many()
    forget_endpoints(session, organization_id)
    return WebhookEndpointCreated(**endpoint_out(endpoint).model_dump(), secret=secret)


def _too_many() -> TooManyWebhookEndpoints:
    return TooManyWebhookEndpoints(
        f"An organization has at most {MAX_ENDPOINTS_PER_ORGANIZATION} webhook endpoints; delete one you no "
        "longer use, or subscribe an existing endpoint to more event types"
    )


async def update_endpoint(
    session: AsyncSession, *, runtime: Runtime, organization_id: str, endpoint_id: str, data: WebhookEndpointUpdate
) -> WebhookEndpointOut:
    """Change the fields present. Enabling an endpoint clears the failure record that disabled it; a new
    URL starts a new failure record (the old target's failures say nothing about it)."""
    repository = WebhookEndpointRepository(session, organization_id)
    endpoint = await repository.get(endpoint_id)
    fields = data.model_fields_set
    for name in ("url", "events", "enabled"):
        if name in fields and getattr(data, name) is None:
            raise InvalidRequest(f"{name} may be changed but not set to null")
    if data.url is not None and data.url != endpoint.url:
        await check_target_url(runtime, data.url)
        endpoint.url = data.url
        endpoint.failing_since = None
    if data.events is not None:
        endpoint.events = list(data.events)
    if "description" in fields:
        endpoint.description = data.description
    if data.enabled is not None:
        if data.enabled and not endpoint.enabled:
            endpoint.disabled_at = None
            endpoint.disabled_reason = None
            endpoint.failing_since = None
        endpoint.enabled = data.enabled
    endpoint.updated_at = now()
    await session.flush()
    forget_endpoints(session, organization_id)
    return endpoint_out(endpoint)


async def delete_endpoint(session: AsyncSession, *, organization_id: str, endpoint_id: str) -> None:
    """Delete an endpoint with its pending deliveries and its log."""
    repository = WebhookEndpointRepository(session, organization_id)
    endpoint = await repository.get(endpoint_id)
    await session.delete(endpoint)
    await session.flush()
    forget_endpoints(session, organization_id)


async def rotate_secret(
    session: AsyncSession, *, runtime: Runtime, organization_id: str, endpoint_id: str
) -> WebhookSecretRotated:
    """Issue a new secret; the one it replaces keeps signing beside it for SECRET_OVERLAP.

    Rotating again within that time retires the older one at once: the previous secret is always
    the one just replaced.
    """
    repository = WebhookEndpointRepository(session, organization_id)
    endpoint = await repository.get(endpoint_id)
    secret = new_secret()
    moment = now()
    endpoint.previous_secret_encrypted = endpoint.secret_encrypted
    endpoint.previous_secret_expires_at = moment + SECRET_OVERLAP
    endpoint.secret_encrypted = runtime.secret_box.encrypt(secret)
    endpoint.updated_at = moment
    await session.flush()
    forget_endpoints(session, organization_id)
    return WebhookSecretRotated(
        **endpoint_out(endpoint).model_dump(), secret=secret, previous_secret_expires_at=moment + SECRET_OVERLAP
    )


async def list_attempts(
    session: AsyncSession,
    *,
    organization_id: str,
    endpoint_id: str,
    status: AttemptStatus | None,
    event_type: str | None,
    page: PageRequest,
) -> Page[WebhookAttemptOut]:
    """The endpoint's delivery attempts, newest first, each with its delivery's current state."""
    endpoint = await WebhookEndpointRepository(session, organization_id).get(endpoint_id)
    rows, total = await WebhookAttemptRepository(session, organization_id).page_for_endpoint(
        endpoint.id,
        succeeded=None if status is None else status == "succeeded",
        event_type=event_type,
        request=page,
    )
    items = [
        attempt_out(attempt, status=delivery_status, next_attempt_at=next_attempt_at)
        for attempt, delivery_status, next_attempt_at in rows
    ]
    return Page.of(items, request=page, total=total)


async def retry_delivery(
    runtime: Runtime, *, organization_id: str, endpoint_id: str, delivery_or_attempt_id: str
) -> WebhookAttemptOut:
    """Send the delivery again now, named by its id or by one of its attempts' ids (404 otherwise).

    Answers the new attempt with the delivery's state after it. Opens its own short transactions and
    holds none while the endpoint is called (that may take 10 seconds): call it outside any other.
    """
    async with runtime.database.transaction() as session:
        endpoint = await WebhookEndpointRepository(session, organization_id).get(endpoint_id)
        delivery = await WebhookDeliveryRepository(session, organization_id).find_for_endpoint(
            endpoint.id, delivery_or_attempt_id
        )
        if delivery is None:
            raise WebhookDeliveryNotFound(
                f"Webhook delivery {delivery_or_attempt_id} not found for endpoint {endpoint_id}; "
                "use an id from GET /webhooks/{id}/deliveries"
            )
        delivery_id = delivery.id
    attempt = await dispatcher.deliver_now(runtime, organization_id=organization_id, delivery_id=delivery_id)
    return await _with_delivery_state(runtime, organization_id, attempt)


async def send_test(runtime: Runtime, *, organization_id: str, endpoint_id: str) -> WebhookAttemptOut:
    """POST a signed `ping` event to the endpoint now (enabled or not) and answer the attempt.

    The ping is not retried; its attempt appears in the delivery log. Like `retry_delivery`, call it
    outside any transaction.
    """
    async with runtime.database.transaction() as session:
        await WebhookEndpointRepository(session, organization_id).get(endpoint_id)
    attempt = await dispatcher.send_test(runtime, organization_id=organization_id, endpoint_id=endpoint_id)
    return await _with_delivery_state(runtime, organization_id, attempt)


async def _with_delivery_state(runtime: Runtime, organization_id: str, attempt: WebhookAttempt) -> WebhookAttemptOut:
    # Read afresh: the dispatcher moved the delivery on in a transaction of its own.
    async with runtime.database.transaction() as session:
        state = await WebhookDeliveryRepository(session, organization_id).state(attempt.delivery_id)
    status, next_attempt_at = state if state is not None else ("failed", None)
    return attempt_out(attempt, status=status, next_attempt_at=next_attempt_at)
