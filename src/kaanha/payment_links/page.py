"""The public payment page, /pay/{id}: UPI's QR code and open-in-app button, or the way on to the gateway."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import segno
from jinja2 import Environment, PackageLoader, select_autoescape
from markupsafe import Markup

from kaanha.kit.clock import now
from kaanha.models import PaymentLink
from kaanha.payment_links.gateways.upi import upi_uri
from kaanha.payment_links.money import GATEWAY_NAMES, format_amount

_templates = Environment(
    loader=PackageLoader("kaanha.payment_links", "templates"),
    autoescape=select_autoescape(["html"]),
    trim_blocks=True,
    lstrip_blocks=True,
)

STATUS_TEXT = {
    "created": "Waiting for payment",
    "paid": "Paid — thank you",
    "expired": "This payment link has expired",
    "cancelled": "This payment link was cancelled",
}
# The page is per customer and changes with the link's status: never cached, never framed, no outside requests.
HEADERS = {
    "Cache-Control": "no-store",
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; img-src data:; frame-ancestors 'none'",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
}


@dataclass(frozen=True)
class PageView:
    status: str
    status_text: str
    payee: str | None
    amount: str
    description: str
    reference: str | None
    gateway: str
    expires_at: datetime | None
    upi_uri: str | None
    qr_svg: Markup | None
    pay_url: str | None


def effective_status(link: PaymentLink) -> str:
    # The sweep runs every minute; the page must not show a payable code in the meantime.
    if link.status == "created" and link.expires_at is not None and link.expires_at <= now():
        return "expired"
    return link.status


def qr_svg(data: str) -> Markup:
    """The QR code as inline SVG, scaled by CSS; error level M survives a phone screen's glare."""
    code = segno.make(data, error="m", micro=False)
    svg = code.svg_inline(scale=1, border=4, omitsize=True, title="UPI payment QR code", svgclass="qr")
    svg = svg.replace("<svg ", '<svg role="img" aria-label="UPI payment QR code" ', 1)
    return Markup(svg)  # noqa: S704 - segno's own SVG of our URI: paths only, no text from the link


def view(link: PaymentLink) -> PageView:
    status = effective_status(link)
    uri = None
    if link.gateway == "upi" and link.payee_upi_id:
        uri = upi_uri(
            vpa=link.payee_upi_id,
            payee_name=link.payee_name or "",
            amount=link.amount,
            currency=link.currency,
            note=link.description,
            reference=link.id,
        )
    payable = status == "created"
    return PageView(
        status=status,
        status_text=STATUS_TEXT[status],
        payee=link.payee_name,
        amount=format_amount(link.amount, link.currency),
        description=link.description,
        reference=link.reference,
        gateway=GATEWAY_NAMES[link.gateway],
        expires_at=link.expires_at if payable else None,
        upi_uri=uri if payable else None,
        qr_svg=qr_svg(uri) if payable and uri else None,
        pay_url=link.url if payable and link.gateway != "upi" else None,
    )


def render_page(link: PaymentLink) -> str:
    return _templates.get_template("pay.html").render(page=view(link))


def render_not_found() -> str:
    return _templates.get_template("pay.html").render(page=None)
