"""The sandbox's review rules: each of Meta's rejection reasons it checks, and what passes."""

from __future__ import annotations

from typing import Any

import pytest

from kaanha.templates.review import APPROVED, review
from kaanha.templates.samples import SAMPLE_TEMPLATES


def body(text: str, *extra: dict[str, Any]) -> list[dict[str, Any]]:
    return [{"type": "BODY", "text": text}, *extra]


@pytest.mark.parametrize("sample", SAMPLE_TEMPLATES, ids=lambda sample: sample["name"])
def test_whatsapps_own_samples_pass(sample):
    assert review(sample["category"], sample["components"]) == APPROVED


@pytest.mark.parametrize(
    ("category", "components", "reason"),
    [
        ("UTILITY", body("{{1}}, your order has shipped today."), "INVALID_FORMAT: the body starts with a variable"),
        ("UTILITY", body("*{{1}}* your order has shipped today."), "INVALID_FORMAT: the body starts with a variable"),
        ("UTILITY", body("Your order has shipped, {{1}}"), "INVALID_FORMAT: the body ends with a variable"),
        ("UTILITY", body("Your order has shipped, {{1}}."), "INVALID_FORMAT: the body ends with a variable"),
        ("UTILITY", body("Hello {{1}} {{2}}, your order shipped."), "INVALID_FORMAT: two variables are next to"),
        (
            "UTILITY",
            body("Hi {{1}}, order {{2}} at {{3}} ok."),
            "INVALID_FORMAT: the body has 3 variable(s) for 4 word",
        ),
        ("UTILITY", body("Get 20% off your next order today!"), "INCORRECT_CATEGORY: '20% off'"),
        ("AUTHENTICATION", body("Your code, with a discount inside."), "INCORRECT_CATEGORY: 'discount'"),
        (
            "UTILITY",
            body("Your order has shipped.", {"type": "FOOTER", "text": "Limited time only"}),
            "INCORRECT_CATEGORY: 'Limited time'",
        ),
        ("MARKETING", body("Track your order at https://bit.ly/x today"), "SCAM: bit.ly is a link shortener"),
        (
            "MARKETING",
            body(
                "Your order has shipped.",
                {"type": "BUTTONS", "buttons": [{"type": "URL", "text": "Track", "url": "https://tinyurl.com/{{1}}"}]},
            ),
            "SCAM: tinyurl.com",
        ),
        (
            "AUTHENTICATION",
            [{"type": "HEADER", "format": "IMAGE"}, *body("Use this code to sign in to Acme.")],
            "INVALID_FORMAT: an AUTHENTICATION template can't have a media",
        ),
        (
            "AUTHENTICATION",
            body("Use this code to sign in at https://acme.example now."),
            "INVALID_FORMAT: an AUTHENTICATION template can't have links",
        ),
    ],
)
def test_templates_breaking_a_rule_are_rejected_with_metas_reason(category, components, reason):
    verdict = review(category, components)
    assert verdict.status == "REJECTED"
    assert verdict.reason is not None
    assert verdict.reason.startswith(reason), verdict.reason
    assert len(verdict.reason) <= 200


@pytest.mark.parametrize(
    ("category", "components"),
    [
        ("MARKETING", body("Get 20% off your next order with code {{1}} this week.")),
        ("UTILITY", body("Your order has shipped. Track it at https://acme.example/track today.")),
        ("UTILITY", body("Hi {{1}}, your order {{2}} is on its way.")),
        ("AUTHENTICATION", body("Use code {{1}} to sign in to your account.")),
    ],
)
def test_templates_following_the_rules_are_approved(category, components):
    assert review(category, components) == APPROVED
