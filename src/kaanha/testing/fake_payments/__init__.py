"""Fakes of the payment gateways' APIs (Razorpay Payment Links, Stripe Checkout) for tests and demos.

Each is an ASGI app (`fake.app`) following the gateway's documented requests, answers and errors,
with `pay()` / `expire()` to play the customer or the clock: they return the webhook the real gateway
would send, signed with the fake's webhook secret, for the caller to deliver (to loopback or in-process).
"""

from kaanha.testing.fake_payments.common import WebhookCall
from kaanha.testing.fake_payments.razorpay import FakeRazorpay
from kaanha.testing.fake_payments.stripe import FakeStripe

__all__ = ["FakeRazorpay", "FakeStripe", "WebhookCall"]
