"""A faithful fake of Meta's WhatsApp Cloud API (Graph), for tests, benchmarks and `kaanha fake-meta` demos.

- `FakeGraphAPI`: the fake itself (state, checks, limits, faults) and its ASGI `app`.
- `FakeGraphServer`: that app over real HTTP on loopback, in a background thread with its own event loop.

It validates sends as Meta does, enforces the 24 h window (131047), templates (132001/132000), pair rate
(131056) and throughput (130429), and posts signed status and inbound webhooks, in batches, to a loopback
callback only. Facts and sources: shared/whatsapp/cloud-api.md.
"""

from kaanha.testing.fake_graph.errors import CATALOG, GraphError
from kaanha.testing.fake_graph.fake import FakeGraphAPI
from kaanha.testing.fake_graph.models import FakeStats, MediaItem, PhoneNumber, SentMessage, Template, WebhookDelivery
from kaanha.testing.fake_graph.server import BackgroundServer, FakeGraphServer
from kaanha.testing.fake_graph.webhooks import check_loopback_url, signature

__all__ = [
    "CATALOG",
    "BackgroundServer",
    "FakeGraphAPI",
    "FakeGraphServer",
    "FakeStats",
    "GraphError",
    "MediaItem",
    "PhoneNumber",
    "SentMessage",
    "Template",
    "WebhookDelivery",
    "check_loopback_url",
    "signature",
]
