"""The sandbox's template review: Meta's most common reasons to reject a template, checked after a short wait.

Meta reviews every new template (minutes to a day) and rejects it with a reason code. The sandbox
approves after `sandbox.template_review_seconds` unless one of these rules, each taken from Meta's
published rejection reasons, applies; docs/decisions.md lists them. The rules are deliberately few and
predictable: a template the sandbox approves may still be refused by Meta for what only a person sees.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from kaanha.models import Template
from kaanha.runtime import Runtime
from kaanha.templates.components import VARIABLE, buttons, header_format, kind_of, text_of
from kaanha.worker.queue import enqueue

REVIEW_JOB = "templates.review"

# Words that make a message marketing in Meta's eyes; a UTILITY or AUTHENTICATION template using
# them is recategorized or rejected (INCORRECT_CATEGORY).
PROMOTIONAL = re.compile(
    r"\b(offers?|discounts?|sale|coupons?|promo(?: code)?|deals?|cashback|buy now|shop now|limited time|"
    r"special price|exclusive|\d+\s?% off)\b",
    re.IGNORECASE,
)
# Link shorteners hide where a link goes; Meta rejects templates that use them.
SHORTENERS = (
    "bit.ly",
    "tinyurl.com",
    "goo.gl",
    "t.co",
    "ow.ly",
    "is.gd",
    "buff.ly",
    "rebrand.ly",
    "cutt.ly",
    "shorturl.at",
    "tiny.cc",
    "rb.gy",
    "s.id",
)
_LINK = re.compile(r"(?:https?://)?(?:www\.)?([a-z0-9-]+(?:\.[a-z0-9-]+)+)(?=[/\s?#.,;:!)]|$)", re.IGNORECASE)
# Enough fixed words around the variables: Meta rejects templates that are mostly variables.
WORDS_PER_VARIABLE = 2
_WORD = re.compile(r"[^\W_]+(?:'[^\W_]+)?")
# Text around a variable that doesn't count as text: punctuation and spaces.
_PUNCTUATION = r"[\s.,!?;:()\"'*_~-]*"


@dataclass(frozen=True)
class Verdict:
    status: str
    # "<Meta's reason code>: <what to change>", or None when approved.
    reason: str | None = None


APPROVED = Verdict("APPROVED")


def schedule_review(session: AsyncSession, runtime: Runtime, template: Template) -> None:
    """Queue the sandbox's verdict on a new template, as Meta's review would come later."""
    enqueue(
        session,
        kind=REVIEW_JOB,
        payload={"templateId": template.id},
        organization_id=template.organization_id,
        delay=timedelta(seconds=runtime.settings.sandbox.template_review_seconds),
    )


def review(category: str, components: list[dict[str, Any]]) -> Verdict:
    """APPROVED, or REJECTED with the first rule the template breaks."""
    for rule in RULES:
        reason = rule(category, components)
        if reason is not None:
            return Verdict("REJECTED", reason[:200])
    return APPROVED


def _variable_at_an_edge(_category: str, components: list[dict[str, Any]]) -> str | None:
    body = text_of(components, "BODY")
    if re.match(_PUNCTUATION + VARIABLE.pattern, body):
        return "INVALID_FORMAT: the body starts with a variable; begin it with fixed text"
    if re.search(VARIABLE.pattern + _PUNCTUATION + r"$", body):
        return "INVALID_FORMAT: the body ends with a variable; end it with fixed text"
    return None


def _adjacent_variables(_category: str, components: list[dict[str, Any]]) -> str | None:
    body = text_of(components, "BODY")
    if re.search(VARIABLE.pattern + r"\s*" + VARIABLE.pattern, body):
        return "INVALID_FORMAT: two variables are next to each other in the body; put words between them"
    return None


def _too_many_variables(_category: str, components: list[dict[str, Any]]) -> str | None:
    body = text_of(components, "BODY")
    count = len(VARIABLE.findall(body))
    words = len(_WORD.findall(VARIABLE.sub(" ", body)))
    if count and words < WORDS_PER_VARIABLE * count:
        return (
            f"INVALID_FORMAT: the body has {count} variable(s) for {words} word(s) of fixed text; "
            f"write at least {WORDS_PER_VARIABLE} words per variable or use fewer variables"
        )
    return None


def _promotional_in_utility(category: str, components: list[dict[str, Any]]) -> str | None:
    if category not in ("UTILITY", "AUTHENTICATION"):
        return None
    for text in _texts(components):
        found = PROMOTIONAL.search(text)
        if found:
            return (
                f"INCORRECT_CATEGORY: '{found.group(0)}' is promotional wording, which a {category} template "
                "can't have; make it MARKETING or remove it"
            )
    return None


def _link_shortener(_category: str, components: list[dict[str, Any]]) -> str | None:
    links = [*_texts(components), *(str(b.get("url", "")) for b in buttons(components) if kind_of(b) == "URL")]
    for text in links:
        for host in _LINK.findall(text):
            if host.lower() in SHORTENERS:
                return f"SCAM: {host} is a link shortener, which hides where a link goes; use the full address"
    return None


def _authentication_extras(category: str, components: list[dict[str, Any]]) -> str | None:
    # Meta's authentication templates carry a code and nothing else: no media, no links.
    if category != "AUTHENTICATION":
        return None
    if header_format(components) not in (None, "TEXT"):
        return "INVALID_FORMAT: an AUTHENTICATION template can't have a media or location header"
    if any(re.search(r"https?://|www\.", text, re.IGNORECASE) for text in _texts(components)):
        return "INVALID_FORMAT: an AUTHENTICATION template can't have links in its text"
    return None


def _texts(components: list[dict[str, Any]]) -> list[str]:
    texts = [text_of(components, kind) for kind in ("HEADER", "BODY", "FOOTER")]
    texts += [str(button.get("text", "")) for button in buttons(components)]
    return [text for text in texts if text]


RULES: tuple[Callable[[str, list[dict[str, Any]]], str | None], ...] = (
    _variable_at_an_edge,
    _adjacent_variables,
    _too_many_variables,
    _promotional_in_utility,
    _link_shortener,
    _authentication_extras,
)
