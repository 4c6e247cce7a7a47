"""HTTP endpoints for outgoing webhooks: endpoints, secrets, the delivery log, retries and test pings."""

from __future__ import annotations

from typing import Annotated

import orjson
from fastapi import APIRouter, Depends, Query, Request, Response

from kaanha.auth.principal import Principal
from kaanha.errors import InvalidRequest
from kaanha.http.dependencies import RuntimeDep, SessionDep, require_scope
from kaanha.http.responses import JsonResponse
from kaanha.idempotency.service import IdempotencyKeyHeader, idempotent
from kaanha.kit.pagination import Page, PageRequest, page_request
from kaanha.webhooks import service
from kaanha.webhooks.schemas import (
    FILTERABLE_EVENT_TYPES,
    AttemptStatus,
    WebhookAttemptOut,
    WebhookEndpointCreate,
    WebhookEndpointCreated,
    WebhookEndpointOut,
    WebhookEndpointUpdate,
    WebhookSecretRotated,
)

router = APIRouter(prefix="/webhooks", tags=["Webhooks"])

Reader = Annotated[Principal, Depends(require_scope("webhooks:read"))]
Writer = Annotated[Principal, Depends(require_scope("webhooks:write"))]
Paging = Annotated[PageRequest, Depends(page_request)]

_SIGNING = (
    "Every delivery is a POST of `{id, type, timestamp, data}` signed by the Standard Webhooks scheme "
    "(`webhook-id`, `webhook-timestamp`, `webhook-signature` headers): verify it with the endpoint's secret, "
    "for instance with the `standardwebhooks` library."
)


@router.get(
    "",
    summary="List webhook endpoints",
    response_model=Page[WebhookEndpointOut],
    description="The organization's endpoints, newest first. Secrets are never shown again after creation.",
)
async def list_webhooks(principal: Reader, session: SessionDep, paging: Paging) -> Page[WebhookEndpointOut]:
    return await service.list_endpoints(session, organization_id=principal.organization_id, page=paging)


@router.post(
    "",
    summary="Create a webhook endpoint",
    status_code=201,
    response_model=WebhookEndpointCreated,
    description='Subscribes a URL to event types (`["*"]` for all). The answer holds the signing `secret`, '
    "shown only this once. The URL must be public http(s): private, loopback, link-local and metadata "
    "addresses are refused (`unsafe_url`), also when the name resolves to one. At most "
    f"{service.MAX_ENDPOINTS_PER_ORGANIZATION} endpoints per organization. " + _SIGNING,
)
async def create_webhook(
    request: Request,
    principal: Writer,
    session: SessionDep,
    runtime: RuntimeDep,
    body: WebhookEndpointCreate,
    idempotency_key: IdempotencyKeyHeader = None,
) -> JsonResponse:
    box = runtime.secret_box

    # The stored idempotent answer holds the secret encrypted, like the endpoint's row; the client
    # gets it in the clear, the first time and on a replay.
    async def create() -> WebhookEndpointCreated:
        created = await service.create_endpoint(
            session, runtime=runtime, organization_id=principal.organization_id, data=body
        )
        return created.model_copy(update={"secret": box.encrypt(created.secret)})

    sealed = await idempotent(
        session,
        organization_id=principal.organization_id,
        key=idempotency_key,
        endpoint="POST /webhooks",
        request_body=await request.body(),
        status_code=201,
        action=create,
    )
    answer = orjson.loads(sealed.body)
    answer["secret"] = box.decrypt(answer["secret"])
    replayed = {"Idempotent-Replayed": "true"} if sealed.headers.get("idempotent-replayed") else None
    return JsonResponse(answer, status_code=sealed.status_code, headers=replayed)


@router.get(
    "/{webhook_id}",
    summary="Get a webhook endpoint",
    response_model=WebhookEndpointOut,
    description="The endpoint without its secret; `disabledAt` and `disabledReason` say when and why we turned "
    "it off after three days of failed deliveries, `failingSince` when its current run of failures began.",
)
async def get_webhook(webhook_id: str, principal: Reader, session: SessionDep) -> WebhookEndpointOut:
    return await service.get_endpoint(session, organization_id=principal.organization_id, endpoint_id=webhook_id)


@router.patch(
    "/{webhook_id}",
    summary="Update a webhook endpoint",
    response_model=WebhookEndpointOut,
    description="Changes `url`, `events`, `description` or `enabled`; fields left out stay. Setting "
    "`enabled: true` on an endpoint that was disabled after failing for three days clears `disabledAt`, "
    "`disabledReason` and `failingSince`.",
)
async def update_webhook(
    webhook_id: str, body: WebhookEndpointUpdate, principal: Writer, session: SessionDep, runtime: RuntimeDep
) -> WebhookEndpointOut:
    return await service.update_endpoint(
        session, runtime=runtime, organization_id=principal.organization_id, endpoint_id=webhook_id, data=body
    )


@router.delete(
    "/{webhook_id}",
    summary="Delete a webhook endpoint",
    status_code=204,
    description="Deletes the endpoint, its pending deliveries and its delivery log.",
)
async def delete_webhook(webhook_id: str, principal: Writer, session: SessionDep) -> Response:
    await service.delete_endpoint(session, organization_id=principal.organization_id, endpoint_id=webhook_id)
    return Response(status_code=204)


@router.post(
    "/{webhook_id}/rotate-secret",
    summary="Rotate a webhook endpoint's signing secret",
    response_model=WebhookSecretRotated,
    description="Issues a new `secret` (shown only this once). Until `previousSecretExpiresAt` (24 hours) every "
    "delivery carries a signature with each secret, so receivers can switch without losing one. Rotating again "
    "within that time retires the older secret at once.",
)
async def rotate_webhook_secret(
    webhook_id: str, principal: Writer, session: SessionDep, runtime: RuntimeDep
) -> WebhookSecretRotated:
    return await service.rotate_secret(
        session, runtime=runtime, organization_id=principal.organization_id, endpoint_id=webhook_id
    )


@router.get(
    "/{webhook_id}/deliveries",
    summary="List a webhook endpoint's delivery attempts",
    response_model=Page[WebhookAttemptOut],
    description="Each attempt to deliver an event, newest first: its status code, duration, the start of the "
    "answer, or the error; with its delivery's state (`deliveryStatus`: `pending` while retries remain, then "
    "`succeeded` or `failed`) and the next scheduled attempt. Failed deliveries are retried with exponential "
    "backoff for about three days.",
)
async def list_webhook_deliveries(
    webhook_id: str,
    principal: Reader,
    session: SessionDep,
    paging: Paging,
    status: Annotated[AttemptStatus | None, Query(description="`succeeded` or `failed` attempts only")] = None,
    event_type: Annotated[
        str | None, Query(alias="eventType", max_length=64, description="Only attempts for this event type")
    ] = None,
) -> Page[WebhookAttemptOut]:
    if event_type is not None and event_type not in FILTERABLE_EVENT_TYPES:
        raise InvalidRequest(f"eventType must be one of {', '.join(FILTERABLE_EVENT_TYPES)}")
    return await service.list_attempts(
        session,
        organization_id=principal.organization_id,
        endpoint_id=webhook_id,
        status=status,
        event_type=event_type,
        page=paging,
    )


@router.post(
    "/{webhook_id}/deliveries/{delivery_id}/retry",
    summary="Send a delivery again now",
    response_model=WebhookAttemptOut,
    description="Sends the event again at once, whatever its state, and answers the new attempt. "
    "`deliveryId` is a delivery's id or the id of any of its attempts from the delivery log.",
)
async def retry_webhook_delivery(
    webhook_id: str, delivery_id: str, principal: Writer, session: SessionDep, runtime: RuntimeDep
) -> WebhookAttemptOut:
    # No transaction (nor SQLite's write lock from stamping the key's last use) is held during the call.
    await session.commit()
    return await service.retry_delivery(
        runtime, organization_id=principal.organization_id, endpoint_id=webhook_id, delivery_or_attempt_id=delivery_id
    )


@router.post(
    "/{webhook_id}/test",
    summary="Send a test ping to a webhook endpoint",
    response_model=WebhookAttemptOut,
    description="POSTs a signed `ping` event to the endpoint now and answers how it went: `success`, "
    "`statusCode`, `durationMs`, the start of the answer, or the `error`. A ping is not retried; its attempt "
    "appears in the delivery log.",
)
async def send_test_ping(
    webhook_id: str, principal: Writer, session: SessionDep, runtime: RuntimeDep
) -> WebhookAttemptOut:
    # As for a retry: nothing held open while the endpoint takes its time.
    await session.commit()
    return await service.send_test(runtime, organization_id=principal.organization_id, endpoint_id=webhook_id)
