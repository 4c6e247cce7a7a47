"""Currencies (ISO 4217 minor units), how amounts are shown, and each gateway's limits per payment."""

from __future__ import annotations

from dataclasses import dataclass

from kaanha.errors import InvalidRequest


class InvalidAmount(InvalidRequest):
    code = "invalid_amount"


class UnsupportedCurrency(InvalidRequest):
    code = "unsupported_currency"


@dataclass(frozen=True)
class Currency:
    code: str
    # Digits after the decimal point: amounts are integers in 10**-exponent units (paise, cents; yen has none).
    exponent: int
    symbol: str


# The currencies a link may use; a code not listed (or not ISO 4217) is refused rather than guessed at.
CURRENCIES = {
    currency.code: currency
    for currency in (
        Currency("INR", 2, "₹"),
        Currency("USD", 2, "$"),
        Currency("EUR", 2, "€"),
        Currency("GBP", 2, "£"),
        Currency("AED", 2, "AED "),
        Currency("AUD", 2, "A$"),
        Currency("CAD", 2, "CA$"),
        Currency("SGD", 2, "S$"),
        Currency("MYR", 2, "RM"),
        Currency("JPY", 0, "¥"),
    )
}

# Per gateway and currency, the least and most one payment may be, in minor units:
# - UPI takes INR only; NPCI's ordinary per-transaction cap is ₹1,00,000, and ₹1 is the least we ask for.
# - Razorpay: "The amount must be at least INR 1.00" (100 paise, the same 1.00 in the other currencies);
#   ₹5,00,000 is the default per-payment ceiling of a Razorpay account (raised per account on request).
# - Stripe: the documented minimum charge per currency ($0.50 or its equivalent) and at most eight digits.
LIMITS: dict[str, dict[str, tuple[int, int]]] = {
    "upi": {"INR": (100, 10_000_000)},
    "razorpay": dict.fromkeys(("INR", "USD", "EUR", "GBP", "AED", "AUD", "CAD", "SGD", "MYR"), (100, 50000000)),
    "stripe": {
        "INR": (50, 99_999_999),
        "USD": (50, 99_999_999),
        "EUR": (50, 99_999_999),
        "GBP": (30, 99_999_999),
        "AED": (200, 99_999_999),
        "AUD": (50, 99_999_999),
        "CAD": (50, 99_999_999),
        "SGD": (50, 99_999_999),
        "MYR": (200, 99_999_999),
        "JPY": (50, 99_999_999),
    },
}
GATEWAY_NAMES = {"upi": "UPI", "razorpay": "Razorpay", "stripe": "Stripe"}


def currency_for(code: str) -> Currency:
    currency = CURRENCIES.get(code.upper())
    if currency is None:
        known = ", ".join(sorted(CURRENCIES))
        raise UnsupportedCurrency(f"currency: '{code}' is not a currency payment links take; use one of {known}")
    return currency


def major_units(amount: int, currency: str) -> str:
    """`50000` INR -> `500.00`: the amount as a plain decimal (what UPI's `am` and people read)."""
    exponent = currency_for(currency).exponent
    if exponent == 0:
        return str(amount)
    whole, part = divmod(amount, 10**exponent)
    return f"{whole}.{part:0{exponent}d}"


def format_amount(amount: int, currency: str) -> str:
    """`₹500.00`, `$1,234.50`, `¥500`: for messages and the payment page."""
    details = currency_for(currency)
    whole, part = divmod(amount, 10**details.exponent)
    text = f"{whole:,}" + (f".{part:0{details.exponent}d}" if details.exponent else "")
    return f"{details.symbol}{text}"


def check_amount(amount: int, currency: str, *, gateway: str) -> None:
    """Refuse an amount or currency the organization's gateway would refuse, before asking it."""
    currency_for(currency)
    limits = LIMITS[gateway].get(currency)
    name = GATEWAY_NAMES[gateway]
    if limits is None:
        takes = ", ".join(sorted(LIMITS[gateway]))
        raise UnsupportedCurrency(f"currency: {name} links take {takes}, not {currency}")
    least, most = limits
    if amount < least:
        raise InvalidAmount(
            f"amount: {format_amount(amount, currency)} is below {name}'s minimum of {format_amount(least, currency)} "
            f"(amounts are in minor units: {least} is {format_amount(least, currency)})"
        )
    if amount > most:
        raise InvalidAmount(
            f"amount: {format_amount(amount, currency)} is above {name}'s maximum of {format_amount(most, currency)} "
            "for one payment"
        )
