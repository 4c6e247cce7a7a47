"""UPI: no gateway at all. The link is our hosted page with the standard upi://pay URI as a QR code and a button."""

from __future__ import annotations

from datetime import datetime
from urllib.parse import quote

from kaanha.payment_links.gateways.base import GatewayLink, InvalidExpiry, LinkRequest
from kaanha.payment_links.money import major_units

# Most UPI apps cut the note (`tn`) short; NPCI's linking specification allows up to 80 characters.
NOTE_LIMIT = 80


def upi_uri(*, vpa: str, payee_name: str, amount: int, currency: str, note: str, reference: str) -> str:
    """`upi://pay?pa=..&pn=..&am=..&cu=INR&tn=..&tr=..` as NPCI's linking specification describes it.

    Values are percent-encoded with %20 for spaces (several UPI apps show a `+` literally); the `@`
    of the VPA stays as it is, as every published example writes it. `am` is in rupees with 2 decimals.
    """
    fields = (
        ("pa", vpa),
        ("pn", payee_name),
        ("am", major_units(amount, currency)),
        ("cu", currency),
        ("tn", note[:NOTE_LIMIT]),
        ("tr", reference),
    )
    return "upi://pay?" + "&".join(f"{key}={quote(value, safe='@')}" for key, value in fields)


class UpiGateway:
    name = "upi"

    def check_expiry(self, expires_at: datetime | None, *, at: datetime) -> datetime | None:
        # A UPI QR code can't expire by itself: our page stops showing it. No expiry means it stays up.
        if expires_at is not None and expires_at <= at:
            raise InvalidExpiry("expiresAt: must be in the future")
        return expires_at

    async def create_link(self, request: LinkRequest) -> GatewayLink:
        return GatewayLink(gateway_link_id=None, url=request.page_url, expires_at=request.expires_at)

    async def cancel_link(self, gateway_link_id: str | None) -> None:
        return None  # our page shows it cancelled; there is nothing elsewhere to withdraw
