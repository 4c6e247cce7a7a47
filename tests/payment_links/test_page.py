"""The public /pay/{id} page: amount, payee, the exact upi:// URI, an inline SVG QR code, the status in words."""

from __future__ import annotations

import html
import re
from datetime import timedelta

from kaanha.kit.clock import clock
from tests.conftest import API
from tests.payment_links.support import UPI, created, put_settings


async def page(client, link_id: str):  # type: ignore[no-untyped-def]
    return await client.get(f"/pay/{link_id}")


async def test_the_page_shows_the_amount_payee_qr_code_and_open_in_app_button(client, tenant):
    await put_settings(client, tenant, **UPI)
    link = await created(client, tenant, amount=50050, description="Order #12 & chai", reference="INV/7")

    r = await page(client, link["id"])

    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/html")
    assert r.headers["cache-control"] == "no-store"
    text = r.text
    assert "₹500.50" in text
    assert "Asha Stores" in text
    assert "Order #12 &amp; chai" in text
    assert "Waiting for payment" in text
    expected_uri = (
        "upi://pay?pa=asha.stores@okhdfcbank&pn=Asha%20Stores&am=500.50&cu=INR"
        f"&tn=Order%20%2312%20%26%20chai&tr={link['id']}"
    )
    hrefs = [html.unescape(href) for href in re.findall(r'href="([^"]+)"', text)]
    assert expected_uri in hrefs
    assert "Open in UPI app" in text
    svg = re.search(r"<svg[^>]*>.*?</svg>", text, re.S)
    assert svg is not None
    assert 'role="img"' in svg.group(0)
    assert "<path" in svg.group(0)
    # Mobile-friendly and self-contained: a viewport, and nothing fetched from anywhere else.
    assert 'name="viewport"' in text
    assert not re.search(r'(src|href)="https?://', text)
    assert "<script" not in text


async def test_the_page_says_paid_and_stops_showing_the_code(client, tenant):
    await put_settings(client, tenant, **UPI, notifyOnPaid=False)
    link = await created(client, tenant)
    await client.post(f"{API}/payment-links/{link['id']}/mark-paid", headers=tenant.headers)

    text = (await page(client, link["id"])).text

    assert "Paid — thank you" in text
    assert "<svg" not in text
    assert "upi://" not in text


async def test_the_page_says_cancelled(client, tenant):
    await put_settings(client, tenant, **UPI)
    link = await created(client, tenant)
    await client.post(f"{API}/payment-links/{link['id']}/cancel", headers=tenant.headers)

    text = (await page(client, link["id"])).text

    assert "This payment link was cancelled" in text
    assert "upi://" not in text


async def test_the_page_says_expired_as_soon_as_the_time_passes(client, tenant, frozen_clock):
    await put_settings(client, tenant, **UPI)
    link = await created(client, tenant, expiresAt=(frozen_clock + timedelta(hours=1)).isoformat())
    assert "upi://" in (await page(client, link["id"])).text

    clock.advance(timedelta(hours=1))
    text = (await page(client, link["id"])).text

    assert "This payment link has expired" in text
    assert "upi://" not in text


async def test_an_unknown_link_is_a_404_page(client):
    r = await page(client, "pl_doesnotexist")

    assert r.status_code == 404
    assert r.headers["content-type"].startswith("text/html")
    assert "Payment link not found" in r.text
