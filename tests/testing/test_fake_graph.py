"""The fake Graph API over real HTTP on 127.0.0.1: Meta's checks, errors, limits, media, templates, webhooks.

One webhook receiver (a uvicorn app on 127.0.0.1) serves the whole module; each test's fake posts to a path of
its own, so a late status from one test can never be read by another. The fakes' servers are stopped together
at the end of the module, which keeps the file fast.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import socket
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import orjson
import pytest
import pytest_asyncio
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from kaanha.testing.fake_graph import BackgroundServer, FakeGraphAPI, FakeGraphServer, check_loopback_url

TOKEN = "EAAG-test-token"
SECRET = "app-secret-for-tests"
PHONE_ID = "106540352242922"
DISPLAY = "15550783881"
WABA = "102290129340398"
CUSTOMER = "16505551234"
VERSION = "/v24.0"
# Fast timings for tests; each test may override them.
FAST: dict[str, Any] = {
    "status_delay_seconds": 0.01,
    "webhook_batch_interval_seconds": 0.005,
    "template_review_seconds": 0.05,
    "seed": 7,
}
PICK = {"text": "Pick"}
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64


# --- webhook receiver ---------------------------------------------------------------------------------------


@dataclass
class Post:
    headers: dict[str, str]
    body: bytes

    @property
    def payload(self) -> dict[str, Any]:
        data: dict[str, Any] = orjson.loads(self.body)
        return data


@dataclass
class Receiver:
    """Records every POST by path; `failures[path]` answers that many posts with 500 first."""

    url: str = ""
    posts: dict[str, list[Post]] = field(default_factory=dict)
    failures: dict[str, int] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    async def hook(self, request: Request) -> Response:
        body = await request.body()
        path = request.path_params["name"]
        with self.lock:
            self.posts.setdefault(path, []).append(Post(dict(request.headers), body))
            failing = self.failures.get(path, 0)
            self.failures[path] = max(0, failing - 1)
        return Response(status_code=500 if failing else 200)


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    state = Receiver()
    app = Starlette(routes=[Route("/hooks/{name}", state.hook, methods=["POST"])])
    with BackgroundServer(app) as server:
        state.url = server.url
        yield state


@dataclass
class Graph:
    """One fake behind its server, an authenticated client on `/v24.0`, and the webhooks posted for it."""

    fake: FakeGraphAPI
    server: FakeGraphServer
    http: httpx.AsyncClient
    receiver: Receiver
    hook: str

    def posts(self) -> list[Post]:
        with self.receiver.lock:
            return list(self.receiver.posts.get(self.hook, []))

    def statuses(self) -> list[dict[str, Any]]:
        return [
            status
            for post in self.posts()
            for entry in post.payload["entry"]
            for change in entry["changes"]
            for status in change["value"].get("statuses", [])
        ]

    async def send(self, body: dict[str, Any], phone_number_id: str = PHONE_ID) -> httpx.Response:
        return await self.http.post(f"/{phone_number_id}/messages", json=body)

    async def settle(self) -> None:
        await self.fake.wait_for_webhooks_idle(timeout=5)


@pytest.fixture(scope="module")
def servers() -> Iterator[list[FakeGraphServer]]:
    """Every server of the module, stopped in parallel at its end."""
    started: list[FakeGraphServer] = []
    yield started
    threads = [threading.Thread(target=server.stop) for server in started]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


def serve_fake(receiver: Receiver, servers: list[FakeGraphServer], **options: Any) -> Graph:
    """A fake with the test number, served on loopback, posting its webhooks to a receiver path of its own."""
    hook = f"h{len(servers)}"
    settings = {**FAST, **options}
    fake = FakeGraphAPI(access_token=TOKEN, app_secret=SECRET, callback_url=f"{receiver.url}/hooks/{hook}", **settings)
    fake.add_phone_number(PHONE_ID, display_phone_number=DISPLAY, verified_name="Kaanha Test", waba_id=WABA)
    server = FakeGraphServer(fake)
    server.start()
    servers.append(server)
    http = httpx.AsyncClient(base_url=server.url + VERSION, headers={"Authorization": f"Bearer {TOKEN}"})
    return Graph(fake, server, http, receiver, hook)


@pytest_asyncio.fixture
async def make_graph(receiver: Receiver, servers: list[FakeGraphServer]) -> AsyncIterator[Callable[..., Graph]]:
    made: list[Graph] = []

    def make(**options: Any) -> Graph:
        made.append(serve_fake(receiver, servers, **options))
        return made[-1]

    yield make
    for graph in made:
        await graph.http.aclose()


@pytest_asyncio.fixture
async def graph(make_graph: Callable[..., Graph]) -> Graph:
    return make_graph()


@pytest_asyncio.fixture(scope="module")
async def shared(receiver: Receiver, servers: list[FakeGraphServer]) -> AsyncIterator[Graph]:
    """One fake for the many table-driven cases that only look at one answer each (with the window open)."""
    graph = serve_fake(receiver, servers)
    graph.fake.open_window(PHONE_ID, CUSTOMER)
    yield graph
    await graph.http.aclose()


def text(to: str = CUSTOMER, body: str = "Hello", **extra: Any) -> dict[str, Any]:
    return {
        "messaging_product": "whatsapp",
        "recipient_type": "individual",
        "to": to,
        "type": "text",
        "text": {"body": body},
        **extra,
    }


def message(kind: str, content: Any, to: str = CUSTOMER) -> dict[str, Any]:
    return {"messaging_product": "whatsapp", "to": to, "type": kind, kind: content}


def interactive(kind: str, action: dict[str, Any], body: dict[str, Any] | None = None) -> dict[str, Any]:
    content: dict[str, Any] = {"type": kind, "action": action}
    if body is not None:
        content["body"] = body
    return message("interactive", content)


def reply_buttons(*titles: str, with_body: bool = True) -> dict[str, Any]:
    buttons = [{"type": "reply", "reply": {"id": f"b{n}", "title": title}} for n, title in enumerate(titles)]
    return interactive("button", {"buttons": buttons}, PICK if with_body else None)


def rows(count: int, prefix: str) -> list[dict[str, str]]:
    return [{"id": f"{prefix}{n}", "title": "Row"} for n in range(count)]


def list_message(*sections: list[dict[str, str]]) -> dict[str, Any]:
    action = {"button": "Open", "sections": [{"title": f"S{n}", "rows": items} for n, items in enumerate(sections)]}
    return interactive("list", action, PICK)


def graph_error(response: httpx.Response, status: int, code: int) -> dict[str, Any]:
    """The response is Meta's error shape with this code; returns the `error` object."""
    assert response.status_code == status, response.text
    error: dict[str, Any] = response.json()["error"]
    assert error["code"] == code, error
    assert error["type"] == "OAuthException"
    assert error["error_data"]["messaging_product"] == "whatsapp"
    assert isinstance(error["error_data"]["details"], str)
    assert error["fbtrace_id"]
    assert isinstance(error["message"], str)
    return error


def verify_signature(post: Post) -> None:
    expected = "sha256=" + hmac.new(SECRET.encode(), post.body, hashlib.sha256).hexdigest()
    assert hmac.compare_digest(post.headers["x-hub-signature-256"], expected)
    assert post.headers["content-type"] == "application/json"


UTILITY_BODY = {"type": "BODY", "text": "Hi {{1}}, order {{2}} is ready", "example": {"body_text": [["Ana", "#1"]]}}


def order_template(graph: Graph, status: str = "APPROVED") -> str:
    return graph.fake.add_template(
        WABA,
        name="order_ready",
        language="en_US",
        category="UTILITY",
        components=[
            {"type": "HEADER", "format": "TEXT", "text": "Order {{1}}", "example": {"header_text": ["#1"]}},
            UTILITY_BODY,
        ],
        status=status,
    )


def template_send(
    components: list[dict[str, Any]], *, name: str = "order_ready", code: str = "en_US"
) -> dict[str, Any]:
    return message("template", {"name": name, "language": {"code": code}, "components": components})


def params(*values: str) -> list[dict[str, str]]:
    return [{"type": "text", "text": value} for value in values]


# --- authentication and nodes -------------------------------------------------------------------------------


async def test_graph_calls_need_the_access_token(graph: Graph) -> None:
    url = f"{graph.server.url}{VERSION}/{PHONE_ID}"
    async with httpx.AsyncClient() as anonymous:
        missing = graph_error(await anonymous.get(url), 401, 190)
        wrong = graph_error(await anonymous.get(url, headers={"Authorization": "Bearer nope"}), 401, 190)
        basic = await anonymous.get(url, headers={"Authorization": f"Basic {TOKEN}"})
    assert missing["message"].startswith("Error validating access token")
    assert wrong["error_subcode"] == 463
    assert wrong["message"].startswith("Error validating access token: ")
    graph_error(basic, 401, 190)
    assert (await graph.http.get(f"/{PHONE_ID}")).status_code == 200


async def test_phone_number_node_and_unknown_ids(graph: Graph) -> None:
    response = await graph.http.get(f"/{PHONE_ID}", params={"fields": "display_phone_number,verified_name"})
    assert response.json() == {"display_phone_number": DISPLAY, "verified_name": "Kaanha Test", "id": PHONE_ID}
    full = (await graph.http.get(f"/{PHONE_ID}")).json()
    assert full["quality_rating"] == "GREEN"
    assert full["code_verification_status"] == "VERIFIED"
    unknown = graph_error(await graph.http.get("/999999"), 400, 100)
    assert unknown["error_subcode"] == 33
    assert "Object with ID '999999' does not exist" in unknown["message"]
    graph_error(await graph.http.get(f"/{PHONE_ID}", params={"fields": "nonsense"}), 400, 100)
    numbers = (await graph.http.get(f"/{WABA}/phone_numbers")).json()["data"]
    assert [number["id"] for number in numbers] == [PHONE_ID]
    graph_error(await graph.http.post("/999999/messages", json=text()), 400, 100)


async def test_any_version_segment_is_accepted_and_unknown_paths_are_refused(graph: Graph) -> None:
    headers = {"Authorization": f"Bearer {TOKEN}"}
    async with httpx.AsyncClient(base_url=graph.server.url, headers=headers) as http:
        for version in ("v21.0", "v22.0", "v24.0"):
            assert (await http.get(f"/{version}/{PHONE_ID}")).status_code == 200
        graph_error(await http.get(f"/latest/{PHONE_ID}"), 400, 2500)
        graph_error(await http.get("/v24.0/a/b/c/d"), 400, 2500)


# --- sends: validation --------------------------------------------------------------------------------------

CTA_NO_URL = {"display_text": "Open", "url": "not a url"}
FLOW_NO_VERSION = {"flow_cta": "Open", "flow_id": "1"}
INVALID_SENDS: list[tuple[str, dict[str, Any], int]] = [
    ("no messaging_product", {"to": CUSTOMER, "type": "text", "text": {"body": "x"}}, 100),
    ("wrong messaging_product", {**text(), "messaging_product": "sms"}, 100),
    ("group recipient_type", {**text(), "recipient_type": "group"}, 100),
    ("to with a plus", text(to="+16505551234"), 100),
    ("to with letters", text(to="1650555abcd"), 100),
    ("unknown type", {**text(), "type": "hologram"}, 100),
    ("type object missing", {**text(), "type": "image"}, 100),
    ("text without body", message("text", {"preview_url": False}), 100),
    ("text too long", text(body="x" * 4097), 100),
    ("image with id and link", message("image", {"id": "1", "link": "https://example.com/a.png"}), 100),
    ("image with neither", message("image", {"caption": "x"}), 100),
    ("image with an unknown id", message("image", {"id": "424242"}), 131053),
    ("image link not http", message("image", {"link": "ftp://example.com/a.png"}), 100),
    ("caption on audio", message("audio", {"link": "https://example.com/a.ogg", "caption": "no"}), 100),
    ("filename on image", message("image", {"link": "https://example.com/a.png", "filename": "a.png"}), 100),
    ("location without latitude", message("location", {"longitude": 1.0}), 100),
    ("location out of range", message("location", {"latitude": 91, "longitude": 1.0}), 100),
    ("contacts without formatted_name", message("contacts", [{"name": {"first_name": "Ana"}}]), 100),
    ("contacts empty", message("contacts", []), 100),
    ("reaction without message_id", message("reaction", {"emoji": "👍"}), 100),
    ("bad context", {**text(), "context": {"id": "x"}}, 100),
    ("callback data too long", text(biz_opaque_callback_data="x" * 513), 100),
    ("four reply buttons", reply_buttons("A", "B", "C", "D"), 100),
    ("button title over 20", reply_buttons("x" * 21), 100),
    ("interactive without body", reply_buttons("A", with_body=False), 100),
    ("list with eleven rows", list_message(rows(6, "a"), rows(5, "b")), 100),
    ("list row title over 24", list_message([{"id": "r", "title": "x" * 25}]), 100),
    ("cta_url without a URL", interactive("cta_url", {"name": "cta_url", "parameters": CTA_NO_URL}, PICK), 100),
    ("flow without version", interactive("flow", {"name": "flow", "parameters": FLOW_NO_VERSION}, PICK), 100),
    ("unknown interactive type", message("interactive", {"type": "carousel_3d", "body": {"text": "x"}}), 100),
    ("template without language", message("template", {"name": "order_ready"}), 100),
]


@pytest.mark.parametrize(("case", "body", "code"), INVALID_SENDS, ids=[case for case, _, _ in INVALID_SENDS])
async def test_invalid_sends_are_refused_like_meta(shared: Graph, case: str, body: dict[str, Any], code: int) -> None:
    accepted, refused = len(shared.fake.sent), shared.fake.stats.refused[code]
    error = graph_error(await shared.send(body), 400, code)
    assert error["error_data"]["details"]
    assert len(shared.fake.sent) == accepted
    assert shared.fake.stats.refused[code] == refused + 1


async def test_a_body_that_is_not_json_is_code_100(shared: Graph) -> None:
    response = await shared.http.post(
        f"/{PHONE_ID}/messages", content=b"{not json", headers={"Content-Type": "application/json"}
    )
    graph_error(response, 400, 100)


VALID_SENDS: list[tuple[str, Any]] = [
    ("text", {"preview_url": True, "body": "x" * 4096}),
    ("image", {"link": "https://example.com/a.png", "caption": "A"}),
    ("document", {"link": "https://example.com/a.pdf", "caption": "Invoice", "filename": "a.pdf"}),
    ("audio", {"link": "https://example.com/a.ogg"}),
    ("video", {"link": "https://example.com/a.mp4"}),
    ("sticker", {"link": "https://example.com/a.webp"}),
    ("location", {"latitude": 37.48, "longitude": -122.14, "name": "HQ", "address": "1 Hacker Way"}),
    ("contacts", [{"name": {"formatted_name": "Ana B", "first_name": "Ana"}, "phones": [{"phone": "+1 650"}]}]),
    ("reaction", {"message_id": "wamid.x", "emoji": ""}),
    (
        "interactive",
        {
            "type": "button",
            "header": {"type": "text", "text": "Hi"},
            "body": {"text": "Pick"},
            "footer": {"text": "f"},
            "action": {
                "buttons": [
                    {"type": "reply", "reply": {"id": "y", "title": "Yes"}},
                    {"type": "reply", "reply": {"id": "n", "title": "No"}},
                ]
            },
        },
    ),
    (
        "interactive",
        {
            "type": "list",
            "body": {"text": "Pick"},
            "action": {
                "button": "View options",
                "sections": [
                    {"title": "A", "rows": [{"id": "r1", "title": "One", "description": "d" * 72}]},
                    {"title": "B", "rows": [{"id": "r2", "title": "Two"}]},
                ],
            },
        },
    ),
    (
        "interactive",
        {
            "type": "cta_url",
            "body": {"text": "Track"},
            "action": {"name": "cta_url", "parameters": {"display_text": "Open", "url": "https://example.com/t/1"}},
        },
    ),
    (
        "interactive",
        {
            "type": "flow",
            "body": {"text": "Book"},
            "action": {
                "name": "flow",
                "parameters": {
                    "flow_message_version": "3",
                    "flow_token": "t",
                    "flow_id": "1",
                    "flow_cta": "Open",
                    "flow_action": "navigate",
                    "flow_action_payload": {"screen": "START"},
                },
            },
        },
    ),
    ("interactive", {"type": "product", "action": {"catalog_id": "c1", "product_retailer_id": "p1"}}),
]


@pytest.mark.parametrize(("kind", "content"), VALID_SENDS, ids=[f"{k}-{i}" for i, (k, _) in enumerate(VALID_SENDS)])
async def test_valid_sends_of_every_type_are_accepted(shared: Graph, kind: str, content: Any) -> None:
    response = await shared.send(message(kind, content))
    assert response.status_code == 200, response.text
    assert shared.fake.sent[-1].type == kind
    assert shared.fake.sent[-1].wamid == response.json()["messages"][0]["id"]


async def test_a_successful_send_has_metas_shape_and_is_recorded(graph: Graph) -> None:
    graph.fake.open_window(PHONE_ID, CUSTOMER)
    response = await graph.send(text(biz_opaque_callback_data="order-1"))
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"messaging_product", "contacts", "messages"}
    assert body["contacts"] == [{"input": CUSTOMER, "wa_id": CUSTOMER}]
    wamid = body["messages"][0]["id"]
    assert wamid.startswith("wamid.")
    assert "message_status" not in body["messages"][0]
    [sent] = graph.fake.sent
    assert (sent.wamid, sent.phone_number_id, sent.to, sent.type) == (wamid, PHONE_ID, CUSTOMER, "text")
    assert sent.body["text"] == {"body": "Hello"}
    assert sent.accepted_at == pytest.approx(time.time(), abs=5)
    assert graph.fake.sent_by_callback_data() == {"order-1": [sent]}


async def test_media_sends_by_id_need_a_media_id_of_the_fake(graph: Graph) -> None:
    graph.fake.open_window(PHONE_ID, CUSTOMER)
    media_id = graph.fake.add_media(PNG, "image/png")
    assert (await graph.send(message("image", {"id": media_id, "caption": "Look"}))).status_code == 200


# --- window, templates, limits ------------------------------------------------------------------------------


async def test_free_form_sends_need_the_customer_service_window(make_graph: Callable[..., Graph]) -> None:
    graph = make_graph()
    error = graph_error(await graph.send(text()), 400, 131047)
    assert error["message"] == "(#131047) Re-engagement message"
    graph.fake.open_window(PHONE_ID, CUSTOMER, at=time.time() - 25 * 3600)
    graph_error(await graph.send(text()), 400, 131047)
    graph.fake.open_window(PHONE_ID, CUSTOMER, at=time.time() - 23 * 3600)
    assert (await graph.send(text())).status_code == 200
    lax = make_graph(enforce_window=False)
    assert (await lax.send(text())).status_code == 200


async def test_customer_writes_opens_the_window_and_posts_a_signed_inbound_webhook(graph: Graph) -> None:
    wamid = await graph.fake.customer_writes(PHONE_ID, CUSTOMER, "Does it come in blue?", name="Sheena")
    [post] = graph.posts()
    verify_signature(post)
    value = post.payload["entry"][0]["changes"][0]["value"]
    assert post.payload["object"] == "whatsapp_business_account"
    assert post.payload["entry"][0]["id"] == WABA
    assert value["metadata"] == {"display_phone_number": DISPLAY, "phone_number_id": PHONE_ID}
    assert value["contacts"] == [{"profile": {"name": "Sheena"}, "wa_id": CUSTOMER}]
    [inbound] = value["messages"]
    assert inbound["id"] == wamid
    assert inbound["from"] == CUSTOMER
    assert inbound["type"] == "text"
    assert inbound["text"] == {"body": "Does it come in blue?"}
    assert inbound["timestamp"].isdigit()
    assert (await graph.send(text())).status_code == 200


async def test_customer_writes_sync_from_another_thread(graph: Graph) -> None:
    wamid = await asyncio.to_thread(graph.fake.customer_writes_sync, PHONE_ID, CUSTOMER, "Hi")
    assert wamid.startswith("wamid.")
    assert len(graph.posts()) == 1


async def test_template_sends_are_checked_against_the_wabas_templates(graph: Graph) -> None:
    order_template(graph)
    header, body = {"type": "header", "parameters": params("#7")}, {"type": "body", "parameters": params("Ana", "#7")}
    missing = graph_error(await graph.send(template_send([header, body], name="nope")), 400, 132001)
    assert "nope" in missing["error_data"]["details"]
    graph_error(await graph.send(template_send([header, body], code="pt_BR")), 400, 132001)
    short = graph_error(
        await graph.send(template_send([header, {"type": "body", "parameters": params("Ana")}])), 400, 132000
    )
    assert "body" in short["error_data"]["details"]
    graph_error(await graph.send(template_send([body])), 400, 132000)
    ok = await graph.send(template_send([header, body]))  # no window needed for templates
    assert ok.status_code == 200, ok.text
    assert ok.json()["messages"][0]["message_status"] == "accepted"


async def test_pending_templates_and_other_wabas_templates_cannot_be_sent(graph: Graph) -> None:
    order_template(graph, status="PENDING")
    graph.fake.add_template(
        "other-waba",
        name="greeting",
        language="en_US",
        category="MARKETING",
        components=[{"type": "BODY", "text": "Hello"}],
    )
    full = [{"type": "header", "parameters": params("#7")}, {"type": "body", "parameters": params("Ana", "#7")}]
    graph_error(await graph.send(template_send(full)), 400, 132001)
    graph_error(await graph.send(template_send([], name="greeting")), 400, 132001)


async def test_named_and_media_header_templates(graph: Graph) -> None:
    graph.fake.add_template(
        WABA,
        name="named_one",
        language="en",
        category="MARKETING",
        parameter_format="NAMED",
        components=[
            {"type": "HEADER", "format": "IMAGE"},
            {
                "type": "BODY",
                "text": "Hi {{first_name}}",
                "example": {"body_text_named_params": [{"param_name": "first_name", "example": "Ana"}]},
            },
        ],
    )
    named = {"type": "body", "parameters": [{"type": "text", "parameter_name": "first_name", "text": "Ana"}]}
    image = {"type": "header", "parameters": [{"type": "image", "image": {"link": "https://example.com/a.png"}}]}
    graph_error(await graph.send(template_send([named], name="named_one", code="en")), 400, 132012)
    wrong_name = {"type": "body", "parameters": [{"type": "text", "parameter_name": "name", "text": "Ana"}]}
    graph_error(await graph.send(template_send([image, wrong_name], name="named_one", code="en")), 400, 132000)
    assert (await graph.send(template_send([image, named], name="named_one", code="en"))).status_code == 200


async def test_pair_rate_limit_is_a_token_bucket_per_recipient(make_graph: Callable[..., Graph]) -> None:
    graph = make_graph(pair_burst=3, pair_interval_seconds=0.5, enforce_window=False)
    for _ in range(3):
        assert (await graph.send(text())).status_code == 200
    error = graph_error(await graph.send(text()), 400, 131056)
    assert error["message"] == "(#131056) (Business Account, Consumer Account) pair rate limit hit"
    assert (await graph.send(text(to="16505550000"))).status_code == 200
    await asyncio.sleep(0.55)
    assert (await graph.send(text())).status_code == 200
    graph_error(await graph.send(text()), 400, 131056)
    assert len(graph.fake.sent) == 5


async def test_throughput_limit_is_per_number_over_a_sliding_second(make_graph: Callable[..., Graph]) -> None:
    graph = make_graph(throughput_per_second=5, enforce_window=False)
    for n in range(5):
        assert (await graph.send(text(to=f"1650555000{n}"))).status_code == 200
    error = graph_error(await graph.send(text(to="16505559999")), 429, 130429)
    assert error["message"] == "(#130429) Rate limit hit"
    await asyncio.sleep(1.05)
    assert (await graph.send(text(to="16505559999"))).status_code == 200


# --- mark as read -------------------------------------------------------------------------------------------


async def test_mark_as_read_needs_a_received_message(graph: Graph) -> None:
    wamid = await graph.fake.customer_writes(PHONE_ID, CUSTOMER, "Hi")
    read = {"messaging_product": "whatsapp", "status": "read", "message_id": wamid}
    assert (await graph.send(read)).json() == {"success": True}
    typing = {**read, "typing_indicator": {"type": "text"}}
    assert (await graph.send(typing)).json() == {"success": True}
    graph_error(await graph.send({**read, "message_id": "wamid.unknown"}), 400, 100)
    graph_error(await graph.send({**read, "typing_indicator": {"type": "dance"}}), 400, 100)
    assert graph.fake.read_receipts == [wamid, wamid]
    assert graph.fake.sent == []


# --- media --------------------------------------------------------------------------------------------------


async def upload(graph: Graph, data: bytes, mime_type: str) -> httpx.Response:
    files = {"file": ("file.bin", data, mime_type)}
    return await graph.http.post(
        f"/{PHONE_ID}/media", data={"messaging_product": "whatsapp", "type": mime_type}, files=files
    )


async def test_media_upload_url_download_and_delete(graph: Graph) -> None:
    uploaded = await upload(graph, PNG, "image/png")
    assert uploaded.status_code == 200, uploaded.text
    media_id = uploaded.json()["id"]
    assert media_id.isdigit()
    info = (await graph.http.get(f"/{media_id}")).json()
    assert info["messaging_product"] == "whatsapp"
    assert info["mime_type"] == "image/png"
    assert info["sha256"] == hashlib.sha256(PNG).hexdigest()
    assert int(info["file_size"]) == len(PNG)
    assert info["id"] == media_id
    assert info["url"].startswith(f"{graph.server.url}/_fake/media/{media_id}/download?hash=")
    async with httpx.AsyncClient() as anonymous:
        graph_error(await anonymous.get(info["url"]), 401, 190)
    download = await graph.http.get(info["url"])
    assert download.status_code == 200
    assert download.content == PNG
    assert download.headers["content-type"] == "image/png"
    assert (await graph.http.get(info["url"].split("?")[0] + "?hash=forged")).status_code == 404
    assert (await graph.http.delete(f"/{media_id}")).json() == {"success": True}
    assert graph_error(await graph.http.get(f"/{media_id}"), 400, 100)["error_subcode"] == 33
    graph_error(await graph.http.delete(f"/{media_id}"), 400, 100)


async def test_media_uploads_outside_metas_table_are_refused(graph: Graph) -> None:
    graph_error(await upload(graph, b"<html>", "text/html"), 400, 100)
    graph_error(await upload(graph, b"\xff" * (5 * 1024 * 1024 + 1), "image/jpeg"), 400, 131053)
    graph_error(await upload(graph, b"RIFF" + b"\x00" * (100 * 1024), "image/webp"), 400, 131053)
    assert (await upload(graph, b"OggS" + b"\x00" * 100, "audio/ogg; codecs=opus")).status_code == 200
    no_product = await graph.http.post(f"/{PHONE_ID}/media", data={"type": "image/png"}, files={"file": ("a", PNG)})
    graph_error(no_product, 400, 100)
    no_file = await graph.http.post(f"/{PHONE_ID}/media", data={"messaging_product": "whatsapp", "type": "image/png"})
    graph_error(no_file, 400, 100)


async def test_media_added_as_a_customers_is_served_too(graph: Graph) -> None:
    media_id = graph.fake.add_media(b"%PDF-1.4", "application/pdf")
    info = (await graph.http.get(f"/{media_id}")).json()
    assert (await graph.http.get(info["url"])).content == b"%PDF-1.4"
    assert graph.fake.media[media_id].sha256 == hashlib.sha256(b"%PDF-1.4").hexdigest()


# --- templates API ------------------------------------------------------------------------------------------

NEW_TEMPLATE = {
    "name": "order_confirmation",
    "language": "en_US",
    "category": "UTILITY",
    "components": [
        {"type": "HEADER", "format": "TEXT", "text": "Your order"},
        UTILITY_BODY,
        {"type": "FOOTER", "text": "Thanks"},
        {"type": "BUTTONS", "buttons": [{"type": "QUICK_REPLY", "text": "Yes"}]},
    ],
}


async def test_create_template_then_review_approves_it_with_a_signed_webhook(graph: Graph) -> None:
    created = await graph.http.post(f"/{WABA}/message_templates", json=NEW_TEMPLATE)
    assert created.status_code == 200, created.text
    template_id = created.json()["id"]
    assert created.json() == {"id": template_id, "status": "PENDING", "category": "UTILITY"}
    duplicate = graph_error(await graph.http.post(f"/{WABA}/message_templates", json=NEW_TEMPLATE), 400, 100)
    assert duplicate["error_subcode"] == 2388024
    assert duplicate["error_user_title"] == "Content in this language already exists"
    await graph.settle()
    [post] = graph.posts()
    verify_signature(post)
    [entry] = post.payload["entry"]
    assert isinstance(entry["time"], int)
    assert entry["id"] == WABA
    [change] = entry["changes"]
    assert change["field"] == "message_template_status_update"
    assert change["value"] == {
        "event": "APPROVED",
        "message_template_id": int(template_id),
        "message_template_name": "order_confirmation",
        "message_template_language": "en_US",
        "reason": "NONE",
        "message_template_category": "UTILITY",
    }
    listed = (await graph.http.get(f"/{WABA}/message_templates", params={"name": "order_conf"})).json()
    assert [item["status"] for item in listed["data"]] == ["APPROVED"]
    send = template_send([{"type": "body", "parameters": params("Ana", "#1")}], name="order_confirmation")
    assert (await graph.send(send)).status_code == 200


INVALID_TEMPLATES: list[tuple[str, dict[str, Any]]] = [
    ("uppercase name", {**NEW_TEMPLATE, "name": "Order"}),
    ("name with a dash", {**NEW_TEMPLATE, "name": "order-confirmation"}),
    ("unknown category", {**NEW_TEMPLATE, "category": "SERVICE"}),
    ("no body", {**NEW_TEMPLATE, "components": [{"type": "FOOTER", "text": "x"}]}),
    ("no components", {**NEW_TEMPLATE, "components": []}),
    ("variables without examples", {**NEW_TEMPLATE, "components": [{"type": "BODY", "text": "Hi {{1}}"}]}),
    (
        "gap in variables",
        {
            **NEW_TEMPLATE,
            "components": [{"type": "BODY", "text": "Hi {{1}} {{3}}", "example": {"body_text": [["a", "b"]]}}],
        },
    ),
    ("bad language", {**NEW_TEMPLATE, "language": "english"}),
    (
        "variables in the footer",
        {
            **NEW_TEMPLATE,
            "components": [
                {"type": "BODY", "text": "Hi"},
                {"type": "FOOTER", "text": "{{1}}", "example": {"footer_text": ["x"]}},
            ],
        },
    ),
]


@pytest.mark.parametrize(("case", "body"), INVALID_TEMPLATES, ids=[case for case, _ in INVALID_TEMPLATES])
async def test_invalid_templates_are_refused(shared: Graph, case: str, body: dict[str, Any]) -> None:
    graph_error(await shared.http.post(f"/{WABA}/message_templates", json=body), 400, 100)


async def test_list_pages_with_cursors_and_delete_by_name(graph: Graph) -> None:
    for name in ("alpha", "beta", "gamma"):
        graph.fake.add_template(
            WABA,
            name=name,
            language="en_US",
            category="MARKETING",
            components=[{"type": "BODY", "text": f"{name} offer"}],
        )
    graph.fake.add_template(
        WABA, name="alpha", language="es", category="MARKETING", components=[{"type": "BODY", "text": "oferta"}]
    )
    first = (await graph.http.get(f"/{WABA}/message_templates", params={"limit": 3})).json()
    assert [item["name"] for item in first["data"]] == ["alpha", "beta", "gamma"]
    assert set(first["data"][0]) >= {"id", "name", "language", "status", "category", "components", "parameter_format"}
    assert set(first["paging"]["cursors"]) == {"before", "after"}
    second = (await graph.http.get(first["paging"]["next"])).json()
    assert [(item["name"], item["language"]) for item in second["data"]] == [("alpha", "es")]
    assert "next" not in second["paging"]
    assert (await graph.http.delete(f"/{WABA}/message_templates", params={"name": "alpha"})).json() == {"success": True}
    remaining = (await graph.http.get(f"/{WABA}/message_templates")).json()["data"]
    assert [item["name"] for item in remaining] == ["beta", "gamma"]
    graph_error(await graph.http.delete(f"/{WABA}/message_templates", params={"name": "alpha"}), 400, 100)
    graph_error(await graph.http.get("/404404/message_templates"), 400, 100)


async def test_set_template_status_posts_the_event(graph: Graph) -> None:
    template_id = order_template(graph)
    await graph.fake.set_template_status(template_id, "REJECTED")
    [post] = graph.posts()
    assert post.payload["entry"][0]["changes"][0]["value"]["event"] == "REJECTED"
    assert (await graph.http.get(f"/{template_id}")).json()["status"] == "REJECTED"


# --- status webhooks ----------------------------------------------------------------------------------------


async def test_statuses_arrive_signed_in_metas_envelope(graph: Graph) -> None:
    graph.fake.open_window(PHONE_ID, CUSTOMER)
    wamid = (await graph.send(text(biz_opaque_callback_data="cb-1"))).json()["messages"][0]["id"]
    await graph.settle()
    posts = graph.posts()
    assert len(posts) == 3
    for post in posts:
        verify_signature(post)
        assert post.payload["object"] == "whatsapp_business_account"
        [entry] = post.payload["entry"]
        assert entry["id"] == WABA
        [change] = entry["changes"]
        assert change["field"] == "messages"
        assert change["value"]["messaging_product"] == "whatsapp"
        assert change["value"]["metadata"] == {"display_phone_number": DISPLAY, "phone_number_id": PHONE_ID}
    statuses = graph.statuses()
    assert [status["status"] for status in statuses] == ["sent", "delivered", "read"]
    for status in statuses:
        assert status["id"] == wamid
        assert status["recipient_id"] == CUSTOMER
        assert status["biz_opaque_callback_data"] == "cb-1"
        assert status["timestamp"].isdigit()
    assert statuses[0]["pricing"]["category"] == "service"
    assert "pricing" not in statuses[2]
    assert all(outcome == 200 for outcome, _ in graph.fake.webhook_deliveries)


async def test_statuses_are_batched_into_one_envelope(make_graph: Callable[..., Graph]) -> None:
    graph = make_graph(webhook_batch_size=100, webhook_batch_interval_seconds=0.2, enforce_window=False)
    answers = await asyncio.gather(*(graph.send(text(to=f"1650555000{n}")) for n in range(5)))
    assert [answer.status_code for answer in answers] == [200] * 5
    await graph.settle()
    assert len(graph.statuses()) == 15
    assert len(graph.posts()) < 15
    assert max(len(post.payload["entry"][0]["changes"][0]["value"]["statuses"]) for post in graph.posts()) > 1


async def test_duplicate_statuses_when_the_rate_is_one(make_graph: Callable[..., Graph]) -> None:
    graph = make_graph(duplicate_status_rate=1.0, enforce_window=False)
    await graph.send(text())
    await graph.settle()
    names = [status["status"] for status in graph.statuses()]
    assert sorted(names) == ["delivered", "delivered", "read", "read", "sent", "sent"]


async def test_reordered_statuses_when_the_rate_is_one(make_graph: Callable[..., Graph]) -> None:
    graph = make_graph(reorder_status_rate=1.0, enforce_window=False)
    for n in range(3):
        await graph.send(text(to=f"1650555000{n}"))
    await graph.settle()
    by_message: dict[str, list[str]] = {}
    for status in graph.statuses():
        by_message.setdefault(status["id"], []).append(status["status"])
    assert len(by_message) == 3
    for names in by_message.values():
        assert sorted(names) == ["delivered", "read", "sent"]
        assert names != ["sent", "delivered", "read"]


async def test_undeliverable_recipients_get_a_failed_status(make_graph: Callable[..., Graph]) -> None:
    graph = make_graph(enforce_window=False)
    graph.fake.mark_undeliverable(CUSTOMER)
    assert (await graph.send(text())).status_code == 200
    await graph.settle()
    sent, failed = graph.statuses()
    assert (sent["status"], failed["status"]) == ("sent", "failed")
    [error] = failed["errors"]
    assert error["code"] == 131026
    assert set(error) == {"code", "title", "message", "error_data", "href"}
    assert error["error_data"]["details"]
    always_failing = make_graph(enforce_window=False, failed_status_rate=1.0)
    await always_failing.send(text(to="16505550001"))
    await always_failing.settle()
    assert [status["status"] for status in always_failing.statuses()] == ["sent", "failed"]


async def test_failed_webhook_posts_are_retried_and_recorded(graph: Graph) -> None:
    graph.receiver.failures[graph.hook] = 2
    await graph.fake.customer_writes(PHONE_ID, CUSTOMER, "Hi")
    assert [outcome for outcome, _ in graph.fake.webhook_deliveries] == [500, 500, 200]
    assert len(graph.posts()) == 3
    assert graph.posts()[0].body == graph.posts()[2].body


async def test_connection_errors_are_retried_then_given_up(graph: Graph) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    graph.fake.callback_url = f"http://127.0.0.1:{closed_port}/nobody"
    await graph.fake.customer_writes(PHONE_ID, CUSTOMER, "Hi")
    outcomes = [outcome for outcome, _ in graph.fake.webhook_deliveries]
    assert len(outcomes) > 1
    assert all(isinstance(outcome, str) and "Connect" in outcome for outcome in outcomes)
    assert graph.fake.pending_webhooks == 0


# --- injected faults ----------------------------------------------------------------------------------------


async def test_fail_next_answers_the_given_error_then_recovers(make_graph: Callable[..., Graph]) -> None:
    graph = make_graph(enforce_window=False)
    graph.fake.fail_next(131056, count=2)
    graph.fake.fail_next(131000, http_status=500, message="Something went wrong")
    first = graph_error(await graph.send(text()), 400, 131056)
    assert first["message"] == "(#131056) (Business Account, Consumer Account) pair rate limit hit"
    graph_error(await graph.send(text()), 400, 131056)
    assert graph_error(await graph.send(text()), 500, 131000)["message"] == "Something went wrong"
    assert graph.fake.sent == []
    assert (await graph.send(text())).status_code == 200
    assert graph.fake.stats.refused[131056] == 2


async def test_error_rate_answers_500_and_accepts_nothing(make_graph: Callable[..., Graph]) -> None:
    graph = make_graph(enforce_window=False, error_rate=1.0)
    codes = set()
    for _ in range(6):
        response = await graph.send(text())
        assert response.status_code == 500
        codes.add(response.json()["error"]["code"])
    assert codes <= {131000, 2}
    assert graph.fake.sent == []


async def test_timeout_next_accepts_the_send_but_answers_too_late(make_graph: Callable[..., Graph]) -> None:
    graph = make_graph(enforce_window=False, timeout_seconds=1.0)
    assert (await graph.http.get(f"/{PHONE_ID}")).status_code == 200  # a pooled connection: only the read times out
    graph.fake.timeout_next()
    in_doubt = text(biz_opaque_callback_data="in-doubt")
    with pytest.raises(httpx.ReadTimeout):
        await graph.http.post(f"/{PHONE_ID}/messages", json=in_doubt, timeout=httpx.Timeout(5.0, read=0.2))
    [sent] = graph.fake.sent
    assert sent.biz_opaque_callback_data == "in-doubt"
    await graph.settle()
    assert [status["status"] for status in graph.statuses()] == ["sent", "delivered", "read"]
    assert graph.fake.stats.timeouts == 1
    assert (await graph.send(text(to="16505550002"))).status_code == 200


async def test_slow_rate_answers_late_but_fine(make_graph: Callable[..., Graph]) -> None:
    graph = make_graph(enforce_window=False, slow_rate=1.0, slow_seconds=0.2)
    started = time.monotonic()
    assert (await graph.send(text())).status_code == 200
    assert time.monotonic() - started >= 0.2


async def test_fault_rates_are_validated(graph: Graph) -> None:
    with pytest.raises(ValueError, match="between 0 and 1"):
        graph.fake.set_faults(error_rate=1.5)
    with pytest.raises(ValueError, match="unknown"):
        graph.fake.set_faults(chaos=1.0)
    with pytest.raises(ValueError, match="between 0 and 1"):
        FakeGraphAPI(access_token=TOKEN, app_secret=SECRET, timeout_rate=-0.1)


# --- control endpoints ---------------------------------------------------------------------------------------


async def test_control_endpoints_play_the_customer_and_tune_the_fake(graph: Graph) -> None:
    async with httpx.AsyncClient(base_url=graph.server.url + "/_fake") as control:
        wrote = await control.post(f"/customers/{CUSTOMER}/messages", json={"phone_number_id": PHONE_ID, "text": "Hi"})
        assert wrote.status_code == 200, wrote.text
        assert wrote.json()["id"].startswith("wamid.")
        assert len(graph.posts()) == 1
        assert (await graph.send(text(biz_opaque_callback_data="c1"))).status_code == 200
        sent = (await control.get("/sent", params={"limit": 5})).json()
        assert sent["total"] == 1
        assert sent["data"][0]["biz_opaque_callback_data"] == "c1"
        faults = (await control.post("/faults", json={"error_rate": 1.0})).json()["faults"]
        assert faults["error_rate"] == 1.0
        assert (await graph.send(text())).status_code == 500
        assert (await control.post("/faults", json={"error_rate": 2})).status_code == 400
        assert (await control.post("/faults", json={"error_rate": 0})).status_code == 200
        stats = (await control.get("/stats")).json()
        assert stats["accepted"] == 1
        assert stats["refused"] == {"131000": 1} or stats["refused"] == {"2": 1}
        unknown = await control.post(f"/customers/{CUSTOMER}/messages", json={"phone_number_id": "1", "text": "x"})
        assert unknown.status_code == 404


# --- construction ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "http://10.0.0.1/hook",
        "http://192.168.1.10:8000/hook",
        "https://example.com/hook",
        "http://127.0.0.1@example.com/hook",
        "http://localhost.example.com/hook",
        "http://0.0.0.0:9000/hook",
        "ftp://127.0.0.1/hook",
        "not a url",
    ],
)
def test_callback_urls_off_loopback_are_refused(url: str) -> None:
    with pytest.raises(ValueError, match="callback_url"):
        FakeGraphAPI(access_token=TOKEN, app_secret=SECRET, callback_url=url)
    fake = FakeGraphAPI(access_token=TOKEN, app_secret=SECRET)
    with pytest.raises(ValueError, match="callback_url"):
        fake.callback_url = url


@pytest.mark.parametrize(
    "url", ["http://127.0.0.1:8000/hook", "http://127.10.20.30/hook", "http://[::1]:8000/hook", "http://localhost/h"]
)
def test_loopback_callback_urls_are_accepted(url: str) -> None:
    assert check_loopback_url(url) == url
    assert FakeGraphAPI(access_token=TOKEN, app_secret=SECRET, callback_url=url).callback_url == url


async def test_from_options_ignores_nones_and_prepares_a_demo_number() -> None:
    fake = FakeGraphAPI.from_options(
        access_token=TOKEN, app_secret=SECRET, phone_number_id="555", throughput_per_second=None, error_rate=None
    )
    transport = httpx.ASGITransport(app=fake.app)
    headers = {"Authorization": f"Bearer {TOKEN}"}
    async with httpx.AsyncClient(transport=transport, base_url="http://fake/v24.0", headers=headers) as http:
        assert (await http.get("/555")).json()["verified_name"] == "Kaanha Demo"
        hello = message("template", {"name": "hello_world", "language": {"code": "en_US"}})
        assert (await http.post("/555/messages", json=hello)).status_code == 200
    assert fake.sent[0].type == "template"
    await fake.aclose()
