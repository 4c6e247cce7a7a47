"""The HTTP face of the fake: Graph endpoints under `/{version}/...` and demo controls under `/_fake/...`.

Starlette (not FastAPI) keeps the per-request cost low for benchmarks. Graph endpoints check the bearer token
and answer errors in Meta's shape; `/_fake/` endpoints need no token, as they stand for the customer's phone
and the operator of the demo, not for the Graph API.
"""

from __future__ import annotations

import base64
import contextlib
import hmac
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TYPE_CHECKING, Any

import orjson
from starlette.applications import Starlette
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException
from starlette.formparsers import MultiPartException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from kaanha.testing.fake_graph.errors import GraphError, invalid, unknown_object
from kaanha.testing.fake_graph.models import SLOW, TIMEOUT, PhoneNumber, Template

if TYPE_CHECKING:
    from kaanha.testing.fake_graph.fake import FakeGraphAPI

Endpoint = Callable[[Request], Awaitable[Response]]
VERSION = re.compile(r"v\d{1,2}\.\d")
ALL_METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"]
DEFAULT_PHONE_FIELDS = ("verified_name", "code_verification_status", "display_phone_number", "quality_rating", "id")
MESSAGE_190_MISSING = "Error validating access token: the request carries no access token."
MESSAGE_190_INVALID = "Error validating access token: Session has expired or the access token is invalid."


def json_response(data: Any, status_code: int = 200) -> Response:
    return Response(orjson.dumps(data), status_code=status_code, media_type="application/json")


def error_response(error: GraphError) -> Response:
    response = json_response(error.body(), error.http_status)
    if error.code == 190:
        response.headers["WWW-Authenticate"] = 'OAuth "Facebook Platform" "invalid_token" "' + error.message + '"'
    return response


async def json_body(request: Request) -> Any:
    try:
        return orjson.loads(await request.body())
    except orjson.JSONDecodeError:
        raise invalid("The request body is not valid JSON.") from None


def check_token(fake: FakeGraphAPI, request: Request) -> None:
    """`Authorization: Bearer <token>` (or Graph's `access_token` query parameter), else 190 with HTTP 401."""
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if not scheme:
        token = request.query_params.get("access_token", "")
    elif scheme.lower() != "bearer":
        token = ""
    if not token.strip():
        raise GraphError(190, message=MESSAGE_190_MISSING, http_status=401)
    if not hmac.compare_digest(token.strip().encode(), fake.access_token.encode()):
        raise GraphError(190, message=MESSAGE_190_INVALID, http_status=401, subcode=463)


def cursor(template_id: str) -> str:
    return base64.urlsafe_b64encode(template_id.encode()).decode().rstrip("=")


def uncursor(value: str) -> str:
    try:
        return base64.urlsafe_b64decode(value + "=" * (-len(value) % 4)).decode()
    except ValueError:
        raise invalid("Param after is not a valid cursor.") from None


def phone_fields(phone: PhoneNumber, fields: str | None) -> dict[str, Any]:
    """The phone number node; only the asked `fields` (plus id) when given, as Graph does."""
    node: dict[str, Any] = {
        "verified_name": phone.verified_name,
        "code_verification_status": "VERIFIED",
        "display_phone_number": phone.display_phone_number,
        "quality_rating": "GREEN",
        "platform_type": "CLOUD_API",
        "throughput": {"level": "STANDARD"},
        "name_status": "APPROVED",
        "id": phone.id,
    }
    wanted = [name.strip() for name in fields.split(",") if name.strip()] if fields else list(DEFAULT_PHONE_FIELDS)
    for name in wanted:
        if name not in node:
            message = f"(#100) Tried accessing nonexisting field ({name}) on node type (WhatsAppBusinessPhoneNumber)"
            raise GraphError(100, message=message)
    return {name: node[name] for name in (*wanted, "id")}


class GraphRoutes:
    """Handlers of the Graph endpoints; each runs inside `guard`, which does what every Graph call shares."""

    def __init__(self, fake: FakeGraphAPI) -> None:
        self.fake = fake

    def guard(self, handler: Endpoint, *, versioned: bool = True) -> Endpoint:
        """Bind the fake to this loop, count the request, check version and token, shape any GraphError."""

        async def endpoint(request: Request) -> Response:
            self.fake._attach()
            self.fake.stats.requests += 1
            try:
                if versioned and not VERSION.fullmatch(request.path_params.get("version", "")):
                    raise self.unknown_path(request)
                check_token(self.fake, request)
                return await handler(request)
            except GraphError as error:
                self.fake.stats.refused[error.code] += 1
                return error_response(error)

        return endpoint

    @staticmethod
    def unknown_path(request: Request) -> GraphError:
        return GraphError(2500, message=f"Unknown path components: {request.url.path}")

    async def unknown(self, request: Request) -> Response:
        raise self.unknown_path(request)

    async def messages(self, request: Request) -> Response:
        """Sends and read receipts; injected faults apply to sends only."""
        phone = self.fake._phone(request.path_params["node"])
        body = await json_body(request)
        if isinstance(body, dict) and body.get("status") == "read":
            return json_response(self.fake._mark_read(body))
        self.fake.stats.sends += 1
        fault = self.fake._draw_fault()
        if isinstance(fault, GraphError):
            raise fault
        result: dict[str, Any] | GraphError
        try:
            result = self.fake._send(phone, body)
        except GraphError as error:
            result = error
        await self.delay(fault)
        if isinstance(result, GraphError):
            raise result
        return json_response(result)

    async def delay(self, fault: str | None) -> None:
        """The in-doubt cases: the send was processed, but the answer comes late (or after the client gave up)."""
        if fault == TIMEOUT:
            self.fake.stats.timeouts += 1
            await self.fake._pause(self.fake.timeout_seconds)
        elif fault == SLOW:
            self.fake.stats.slow += 1
            await self.fake._pause(self.fake.slow_seconds)

    async def upload(self, request: Request) -> Response:
        """Multipart `file`, `type` (MIME) and `messaging_product=whatsapp` → `{"id": "<media id>"}`."""
        phone = self.fake._phone(request.path_params["node"])
        try:
            form = await request.form()
        except (HTTPException, MultiPartException):
            raise invalid("The request body is not valid multipart/form-data.") from None
        try:
            if form.get("messaging_product") != "whatsapp":
                raise invalid("Param messaging_product is required and must be 'whatsapp'.")
            upload, mime_type = form.get("file"), form.get("type")
            if not isinstance(upload, UploadFile):
                raise invalid("Param file is required and must be a file.")
            if not isinstance(mime_type, str) or not mime_type:
                raise invalid("Param type is required (the file's MIME type).")
            data = await upload.read()
        finally:
            await form.close()
        return json_response({"id": self.fake._upload_media(phone, mime_type, data)})

    async def node(self, request: Request) -> Response:
        """`GET /{id}` of a phone number, media or template; `DELETE /{id}` of media."""
        node_id = request.path_params["node"]
        if request.method == "DELETE":
            self.fake._media_item(node_id, "delete")
            self.fake.media.pop(node_id, None)
            return json_response({"success": True})
        if (phone := self.fake._phones.get(node_id)) is not None:
            return json_response(phone_fields(phone, request.query_params.get("fields")))
        if (item := self.fake.media.get(node_id)) is not None:
            return json_response(self.fake._media_info(item, str(request.base_url).rstrip("/")))
        if (template := self.fake._templates.by_id(node_id)) is not None:
            return json_response(template.to_graph())
        raise unknown_object(node_id, "get")

    async def phone_numbers(self, request: Request) -> Response:
        waba_id = self.fake._waba(request.path_params["node"], "get")
        numbers = [phone for phone in list(self.fake._phones.values()) if phone.waba_id == waba_id]
        data = [phone_fields(phone, request.query_params.get("fields")) for phone in numbers]
        return json_response({"data": data})

    async def message_templates(self, request: Request) -> Response:
        method = request.method.lower()
        waba_id = self.fake._waba(request.path_params["node"], method)
        if method == "post":
            return json_response(self.fake._create_template(waba_id, await json_body(request)))
        if method == "delete":
            name = request.query_params.get("name")
            if not name:
                raise invalid("Param name is required.")
            self.fake._templates.delete(waba_id, name, request.query_params.get("hsm_id"))
            return json_response({"success": True})
        return json_response(self.list_templates(request, waba_id))

    def list_templates(self, request: Request, waba_id: str) -> dict[str, Any]:
        """Filter by name (contains), status, language, category; page with `limit` and `after` cursors."""
        params = request.query_params
        items = [item for item in self.fake._templates.of_waba(waba_id) if _matches(item, params)]
        try:
            limit = int(params.get("limit", "25"))
        except ValueError:
            raise invalid("Param limit must be an integer.") from None
        if not 1 <= limit <= 1000:
            raise invalid("Param limit must be between 1 and 1000.")
        start = 0
        if after := params.get("after"):
            ids = [item.id for item in items]
            template_id = uncursor(after)
            start = ids.index(template_id) + 1 if template_id in ids else len(ids)
        page = items[start : start + limit]
        result: dict[str, Any] = {"data": [_template_fields(item, params.get("fields")) for item in page]}
        if page:
            paging: dict[str, Any] = {"cursors": {"before": cursor(page[0].id), "after": cursor(page[-1].id)}}
            if start + limit < len(items):
                paging["next"] = str(request.url.include_query_params(after=cursor(page[-1].id)))
            result["paging"] = paging
        return result

    async def download(self, request: Request) -> Response:
        """The media URL handed out by `GET /{media-id}`: needs the token and the right `hash`."""
        item = self.fake.media.get(request.path_params["media_id"])
        if item is None or not hmac.compare_digest(request.query_params.get("hash", ""), self.fake.media_hash(item.id)):
            raise GraphError(100, "The media URL is invalid or has expired.", http_status=404)
        return Response(item.data, media_type=item.mime_type)


def _matches(template: Template, params: Any) -> bool:
    name = params.get("name")
    return (
        (not name or name in template.spec.name)
        and params.get("status", template.status) == template.status
        and params.get("language", template.spec.language) == template.spec.language
        and params.get("category", template.spec.category) == template.spec.category
    )


def _template_fields(template: Template, fields: str | None) -> dict[str, Any]:
    node = template.to_graph()
    if not fields:
        return node
    wanted = {name.strip() for name in fields.split(",")} | {"id"}
    return {key: value for key, value in node.items() if key in wanted}


class ControlRoutes:
    """`/_fake/...`: play the customer, read what was sent, change faults, read counters (no token)."""

    def __init__(self, fake: FakeGraphAPI) -> None:
        self.fake = fake

    async def customer_message(self, request: Request) -> Response:
        self.fake._attach()
        try:
            body = orjson.loads(await request.body())
        except orjson.JSONDecodeError:
            return json_response({"error": "the body must be JSON"}, 400)
        phone_number_id, text, name = body.get("phone_number_id"), body.get("text"), body.get("name", "Customer")
        if not isinstance(text, str) or not text or not isinstance(name, str):
            return json_response({"error": "text (a non-empty string) is required; name must be a string"}, 400)
        phone = self.fake._phones.get(str(phone_number_id))
        if phone is None:
            return json_response({"error": f"unknown phone_number_id {phone_number_id!r}"}, 404)
        try:
            wamid = await self.fake._customer_writes(phone, request.path_params["wa_id"], text, name)
        except ValueError as error:
            return json_response({"error": str(error)}, 400)
        return json_response({"id": wamid, "wa_id": request.path_params["wa_id"]})

    async def sent(self, request: Request) -> Response:
        try:
            limit = max(0, min(int(request.query_params.get("limit", "20")), 10_000))
        except ValueError:
            return json_response({"error": "limit must be an integer"}, 400)
        recent = self.fake.sent[-limit:] if limit else []
        return json_response({"data": [message.to_json() for message in recent], "total": len(self.fake.sent)})

    async def faults(self, request: Request) -> Response:
        if request.method == "GET":
            return json_response({"faults": self.fake.faults()})
        try:
            body = orjson.loads(await request.body())
            if not isinstance(body, dict):
                raise ValueError("the body must be a JSON object of fault settings")
            return json_response({"faults": self.fake.set_faults(**body)})
        except (ValueError, orjson.JSONDecodeError) as error:
            return json_response({"error": str(error)}, 400)

    async def stats(self, request: Request) -> Response:
        counters = self.fake.stats.as_dict()
        counters["pending_webhooks"] = self.fake.pending_webhooks
        return json_response(counters)


def build_app(fake: FakeGraphAPI) -> Starlette:
    """The ASGI app of `fake`; its lifespan binds the fake to the server's loop and stops background work."""
    graph, control = GraphRoutes(fake), ControlRoutes(fake)

    @contextlib.asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        fake._attach()
        yield
        await fake._aclose()

    routes = [
        Route("/_fake/customers/{wa_id}/messages", control.customer_message, methods=["POST"]),
        Route("/_fake/sent", control.sent, methods=["GET"]),
        Route("/_fake/faults", control.faults, methods=["GET", "POST"]),
        Route("/_fake/stats", control.stats, methods=["GET"]),
        Route("/_fake/media/{media_id}/download", graph.guard(graph.download, versioned=False), methods=["GET"]),
        Route("/{version}/{node}/messages", graph.guard(graph.messages), methods=["POST"]),
        Route("/{version}/{node}/media", graph.guard(graph.upload), methods=["POST"]),
        Route(
            "/{version}/{node}/message_templates",
            graph.guard(graph.message_templates),
            methods=["GET", "POST", "DELETE"],
        ),
        Route("/{version}/{node}/phone_numbers", graph.guard(graph.phone_numbers), methods=["GET"]),
        Route("/{version}/{node}", graph.guard(graph.node), methods=["GET", "DELETE"]),
        Route("/{path:path}", graph.guard(graph.unknown, versioned=False), methods=ALL_METHODS),
    ]
    return Starlette(routes=routes, lifespan=lifespan)
