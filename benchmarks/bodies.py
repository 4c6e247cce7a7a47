"""Request bodies the load generator makes one per request: Meta's signed webhooks, and Graph API sends.

Every body is distinct (a process-unique prefix and a counter in each wamid or recipient), because the
webhook receiver recognises a retry by the hash of its bytes: two equal POSTs would store one event.

- `MetaWebhooks`: what Meta POSTs to `/api/webhooks/whatsapp` when customers write: one entry of the
  business account whose changes each carry `metadata.phone_number_id`, the customer's profile in
  `contacts[]` and one text message in `messages[]` (a unique wamid), `batch` changes per POST,
  from customers drawn among `customers` Indian numbers. Signed as Meta signs:
  `X-Hub-Signature-256: sha256=<hex HMAC-SHA256(raw body, app secret)>`.
- `GraphSends`: what a worker POSTs to `/{version}/{phone-number-id}/messages`: a valid text send to a
  new recipient every time (so the fake's pair rate never refuses), with the bearer token.
- `WebhookEvents`: what Kaanha POSTs to a customer's webhook endpoint: a `message.received` event
  (`message_event_data`, also what benchmarks/webhooks.py seeds), signed by the Standard Webhooks
  scheme (`webhook-id`, `webhook-timestamp`, `webhook-signature`) with a fixed secret.
"""

from __future__ import annotations

import abc
import base64
import hashlib
import hmac
import itertools
import os
import random
import time
from dataclasses import dataclass
from typing import Any

import orjson


def _words(text: str) -> tuple[str, ...]:
    return tuple(text.split())


FIRST_NAMES = _words(
    "Aarav Aditi Akash Amit Ananya Anjali Arjun Asha Deepak Divya Gaurav Harish Isha Karan Kavita Kiran "
    "Lakshmi Mahesh Meena Neha Nikhil Pooja Priya Rahul Rajesh Ravi Rohan Sanjay Shreya Sneha Sunil Swati "
    "Tanvi Varun Vijay Vikram Yash Zoya Farhan Imran Ayesha Simran Joseph Mary"
)
LAST_NAMES = _words(
    "Sharma Verma Gupta Singh Kumar Patel Shah Mehta Joshi Iyer Nair Menon Reddy Rao Das Bose Ghosh Kulkarni "
    "Patil Kapoor Khanna Agarwal Jain Mishra Yadav Khan Fernandes Gill Bhat Shetty"
)
TEXTS = (
    "Hi, is my order shipped yet?",
    "What time do you open tomorrow?",
    "Can I change the delivery address to my office?",
    "Thanks! Got it.",
    "Do you have this in size M?",
    "Please call me back when you can",
    "Price for 2 kg?",
    "ok",
)


class Bodies(abc.ABC):
    """One request body per call, with the headers it needs; `items` is how many messages it carries."""

    items = 1

    @abc.abstractmethod
    def next(self) -> tuple[bytes, dict[str, str]]: ...


def _run_tag() -> str:
    """Unique to this process and moment, so two runs against one database never repeat a wamid."""
    return f"{os.getpid() % 65536:04X}{int(time.time()) % 65536:04X}"


@dataclass(frozen=True)
class Customer:
    wa_id: str
    name: str


def customers(count: int, seed: int = 2026) -> list[Customer]:
    """`count` distinct Indian mobile numbers (wa_id: digits without the plus) with profile names."""
    rng = random.Random(seed)
    seen: set[str] = set()
    found: list[Customer] = []
    while len(found) < count:
        wa_id = f"91{rng.randint(6, 9)}{rng.randrange(10**9):09d}"
        if wa_id not in seen:
            seen.add(wa_id)
            found.append(Customer(wa_id, f"{rng.choice(FIRST_NAMES)} {rng.choice(LAST_NAMES)}"))
    return found


class MetaWebhooks(Bodies):
    def __init__(
        self,
        *,
        app_secret: str,
        phone_number_id: str,
        waba_id: str,
        display_phone_number: str,
        batch: int = 1,
        customers_count: int = 5000,
        seed: int = 2026,
    ) -> None:
        self.items = batch
        self._secret = app_secret.encode()
        self._metadata = {"display_phone_number": display_phone_number, "phone_number_id": phone_number_id}
        self._waba_id = waba_id
        self._customers = customers(customers_count, seed)
        self._rng = random.Random(seed + 1)
        self._counter = itertools.count(1)
        self._tag = _run_tag()

    def _wamid(self, wa_id: str) -> str:
        # Shaped like Meta's: base64 of the sender and a hex message key; the key makes it unique.
        key = f"{self._tag}{next(self._counter):010X}".encode()
        raw = b"\x18\x0c" + wa_id.encode() + b"\x15\x02\x00\x12\x18\x12" + key + b"\x00"
        return "wamid." + base64.b64encode(raw).decode()

    def _change(self, stamp: str) -> dict[str, Any]:
        customer = self._rng.choice(self._customers)
        message = {
            "from": customer.wa_id,
            "id": self._wamid(customer.wa_id),
            "timestamp": stamp,
            "type": "text",
            "text": {"body": self._rng.choice(TEXTS)},
        }
        return {
            "value": {
                "messaging_product": "whatsapp",
                "metadata": self._metadata,
                "contacts": [{"profile": {"name": customer.name}, "wa_id": customer.wa_id}],
                "messages": [message],
            },
            "field": "messages",
        }

    def next(self) -> tuple[bytes, dict[str, str]]:
        stamp = str(int(time.time()))
        payload = {
            "object": "whatsapp_business_account",
            "entry": [{"id": self._waba_id, "changes": [self._change(stamp) for _ in range(self.items)]}],
        }
        body = orjson.dumps(payload)
        signature = "sha256=" + hmac.new(self._secret, body, hashlib.sha256).hexdigest()
        return body, {"Content-Type": "application/json", "X-Hub-Signature-256": signature}


class GraphSends(Bodies):
    def __init__(self, *, access_token: str, seed: int = 2026) -> None:
        self._headers = {"Content-Type": "application/json", "Authorization": f"Bearer {access_token}"}
        self._counter = itertools.count(1)
        self._rng = random.Random(seed)
        self._tag = int(_run_tag(), 16) % 900 + 100

    def next(self) -> tuple[bytes, dict[str, str]]:
        number = next(self._counter)
        body = {
            "messaging_product": "whatsapp",
            "recipient_type": "individual",
            "to": f"9{self._tag}{number:09d}",
            "type": "text",
            "text": {"preview_url": False, "body": self._rng.choice(TEXTS)},
            "biz_opaque_callback_data": f"msg_bench{number}",
        }
        return orjson.dumps(body), self._headers


def message_event_data(number: int, rng: random.Random, moment: str) -> dict[str, Any]:
    """A received text message as the API shows it (kaanha.messages.schemas.MessageOut, in JSON)."""
    return {
        "id": f"msg_bench{number:012d}",
        "conversationId": f"cnv_bench{number % 997:012d}",
        "contactId": f"ctc_bench{number % 997:012d}",
        "direction": "inbound",
        "type": "text",
        "status": "received",
        "content": {"text": rng.choice(TEXTS)},
        "whatsappMessageId": f"wamid.HBgMOTE{number:020d}",
        "replyTo": None,
        "error": None,
        "createdAt": moment,
        "sentAt": None,
        "deliveredAt": None,
        "readAt": None,
    }


WEBHOOK_SECRET = base64.b64encode(b"kaanha-bench-webhook-secret-0123").decode()


class WebhookEvents(Bodies):
    def __init__(self, *, seed: int = 2026) -> None:
        self._key = base64.b64decode(WEBHOOK_SECRET)
        self._counter = itertools.count(1)
        self._rng = random.Random(seed)
        self._tag = _run_tag()

    def next(self) -> tuple[bytes, dict[str, str]]:
        number = next(self._counter)
        stamp = int(time.time())
        moment = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(stamp))
        event_id = f"evt_bench{self._tag}{number:010d}"
        event = {
            "id": event_id,
            "type": "message.received",
            "timestamp": moment,
            "data": message_event_data(number, self._rng, moment),
        }
        body = orjson.dumps(event)
        signed = f"{event_id}.{stamp}.".encode() + body
        signature = base64.b64encode(hmac.new(self._key, signed, hashlib.sha256).digest()).decode()
        return body, {
            "Content-Type": "application/json",
            "webhook-id": event_id,
            "webhook-timestamp": str(stamp),
            "webhook-signature": f"v1,{signature}",
        }


def make_bodies(spec: dict[str, Any]) -> Bodies:
    """The generator a LoadSpec's `bodies` names: {"kind": "meta-webhook" | "graph-send" | "webhook-event", ...}."""
    options = dict(spec)
    kind = options.pop("kind")
    if kind == "meta-webhook":
        return MetaWebhooks(**options)
    if kind == "graph-send":
        return GraphSends(**options)
    if kind == "webhook-event":
        return WebhookEvents(**options)
    raise ValueError(f"unknown body generator {kind!r}")
