"""Creating a template: Meta's rules for names, categories and every kind of component."""

from __future__ import annotations

from typing import Any

import pytest

from kaanha.templates.rules import InvalidTemplate, check_new_template

BODY = {"type": "BODY", "text": "Hi {{1}}, your order {{2}} is on its way.", "example": {"body_text": [["A", "#1"]]}}


def create(components: list[Any], **fields: Any) -> Any:
    values: dict[str, Any] = {"name": "order_update", "language": "en_US", "category": "UTILITY"}
    values.update(fields)
    return check_new_template(
        name=values["name"],
        language=values["language"],
        category=values["category"],
        parameter_format=values.get("parameter_format"),
        components=components,
    )


def refused(components: list[Any], match: str, **fields: Any) -> None:
    with pytest.raises(InvalidTemplate, match=match):
        create(components, **fields)


# --- the template itself ------------------------------------------------------------------------------------


def test_a_full_template_is_normalised_to_metas_shape():
    template = create(
        [
            {"type": "header", "format": "text", "text": "Order {{1}}", "example": {"header_text": ["#1"]}},
            BODY,
            {"type": "footer", "text": "Acme Store"},
            {
                "type": "buttons",
                "buttons": [
                    {"type": "quick_reply", "text": "Thanks"},
                    {
                        "type": "url",
                        "text": "Track",
                        "url": "https://acme.example/t/{{1}}",
                        "example": "https://x.io/t/1",
                    },
                    {"type": "phone_number", "text": "Call us", "phone_number": "+91 98765 43210"},
                ],
            },
        ],
        category="utility",
    )
    assert template.category == "UTILITY"
    assert template.parameter_format == "POSITIONAL"
    assert [c["type"] for c in template.components] == ["HEADER", "BODY", "FOOTER", "BUTTONS"]
    assert template.components[0]["format"] == "TEXT"
    quick, url, phone = template.components[3]["buttons"]
    assert (quick["type"], url["type"], phone["type"]) == ("QUICK_REPLY", "URL", "PHONE_NUMBER")
    assert url["example"] == ["https://x.io/t/1"]
    assert phone["phone_number"] == "+919876543210"
    assert template.graph_body()["parameter_format"] == "POSITIONAL"


@pytest.mark.parametrize(
    ("fields", "match"),
    [
        ({"name": "Order Update"}, "name must be"),
        ({"name": "x" * 513}, "name must be"),
        ({"language": "english"}, "language 'english'"),
        ({"category": "PROMOTION"}, "category must be one of MARKETING, UTILITY, AUTHENTICATION"),
        ({"parameter_format": "KEYED"}, "parameterFormat must be one of POSITIONAL, NAMED"),
    ],
)
def test_the_templates_own_fields_are_checked(fields, match):
    refused([BODY], match, **fields)


def test_components_need_exactly_one_body_and_one_of_each_other_part():
    refused([], "at least a BODY")
    refused([{"type": "FOOTER", "text": "Acme"}], "must include a BODY")
    refused([BODY, BODY], r"components\[1\]: a template has at most one BODY")
    refused([BODY, {"type": "CAROUSEL"}], r"components\[1\].type must be HEADER, BODY, FOOTER or BUTTONS")
    refused([BODY, "footer"], r"components\[1\] must be an object")
    refused([{**BODY, "txt": "typo"}], r"components\[0\] \(BODY\): 'txt' is not a field here")


# --- header -------------------------------------------------------------------------------------------------


def test_a_text_header_is_short_one_line_with_at_most_one_variable():
    header = {"type": "HEADER", "format": "TEXT", "text": "Your order"}
    assert create([header, BODY]).components[0] == header
    refused([{**header, "text": "x" * 61}, BODY], r"components\[0\] \(HEADER\).text is 61 characters")
    refused([{**header, "text": "Two\nlines"}, BODY], "without line breaks")
    refused(
        [{**header, "text": "{{1}} and {{2}}", "example": {"header_text": ["a", "b"]}}, BODY],
        "at most one variable",
    )
    refused([{**header, "text": "Order {{1}}"}, BODY], r"HEADER\).example must be")
    refused([{**header, "format": "GIF"}, BODY], "format must be one of TEXT, IMAGE, VIDEO, DOCUMENT, LOCATION")


@pytest.mark.parametrize("media", ["IMAGE", "VIDEO", "DOCUMENT"])
def test_a_media_header_has_no_text_and_an_optional_sample_handle(media):
    header = {"type": "HEADER", "format": media}
    assert create([header, BODY]).components[0] == header
    with_handle = {**header, "example": {"header_handle": ["4::aW1hZ2U="]}}
    assert create([with_handle, BODY]).components[0] == with_handle
    refused([{**header, "text": "Hi"}, BODY], f"a {media} header has no text")
    refused([{**header, "example": {"header_handle": []}}, BODY], "a list of one upload handle")
    refused([{**header, "example": {"header_text": ["x"]}}, BODY], "may only be")


# --- body ---------------------------------------------------------------------------------------------------


def test_a_body_is_required_and_at_most_1024_characters():
    refused([{"type": "BODY"}], r"\(BODY\).text is required")
    refused([{"type": "BODY", "text": "   "}], r"\(BODY\).text is required")
    refused([{"type": "BODY", "text": "x" * 1025}], "1,025 characters; WhatsApp allows at most 1,024")
    assert create([{"type": "BODY", "text": "x" * 1024}])


def test_positional_variables_run_from_one_without_gaps_and_need_samples():
    refused([{"type": "BODY", "text": "Hi {{1}} and {{3}}", "example": {"body_text": [["a", "b"]]}}], "without gaps")
    refused([{"type": "BODY", "text": "Hi {{name}}!", "example": {"body_text": [["a"]]}}], "not a numbered variable")
    refused([{"type": "BODY", "text": "Hi {{1}, welcome"}], "two braces each side")
    refused([{"type": "BODY", "text": "Hi {{1}} there"}], r"example must be \{\"body_text\"")
    refused([{**BODY, "example": {"body_text": [["only one"]]}}], "must give 2 sample value")
    refused([{**BODY, "example": {"body_text": [["", "b"]]}}], "must give 2 sample value")
    refused([{"type": "BODY", "text": "No variables", "example": {"body_text": [["a"]]}}], "takes no example")


def test_named_variables_are_lowercase_names_with_a_sample_each():
    body = {
        "type": "BODY",
        "text": "Hi {{first_name}}, order {{order_id}} ships today.",
        "example": {
            "body_text_named_params": [
                {"param_name": "first_name", "example": "Asha"},
                {"param_name": "order_id", "example": "#1"},
            ]
        },
    }
    assert create([body], parameter_format="NAMED").parameter_format == "NAMED"
    refused([BODY], "not a named variable", parameter_format="NAMED")
    refused([{**body, "text": "Hi {{FirstName}} today"}], "not a named variable", parameter_format="NAMED")
    short = {**body, "example": {"body_text_named_params": [{"param_name": "first_name", "example": "Asha"}]}}
    refused([short], "one sample per variable", parameter_format="NAMED")
    refused([{**body, "example": {"body_text": [["a", "b"]]}}], "body_text_named_params", parameter_format="NAMED")


# --- footer -------------------------------------------------------------------------------------------------


def test_a_footer_is_short_and_has_no_variables():
    refused([BODY, {"type": "FOOTER", "text": "x" * 61}], r"\(FOOTER\).text is 61 characters")
    refused([BODY, {"type": "FOOTER", "text": "Order {{1}}"}], "a footer can't have variables")
    refused([BODY, {"type": "FOOTER"}], r"\(FOOTER\).text is required")


# --- buttons ------------------------------------------------------------------------------------------------


def buttons(*items: Any) -> list[Any]:
    return [BODY, {"type": "BUTTONS", "buttons": list(items)}]


def test_button_texts_are_at_most_25_characters_without_variables():
    refused(buttons({"type": "QUICK_REPLY", "text": "x" * 26}), r"buttons\[0\] \(QUICK_REPLY\).text is 26 characters")
    refused(buttons({"type": "QUICK_REPLY", "text": "Hi {{1}}"}), "a button's text can't have variables")
    refused(buttons({"type": "QUICK_REPLY"}), "text is required")
    refused(buttons({"type": "FLOW", "text": "Go"}), "type must be one of QUICK_REPLY, URL, PHONE_NUMBER")
    refused(buttons({"type": "QUICK_REPLY", "text": "Yes", "payload": "x"}), "'payload' is not a field here")


def test_a_url_button_has_at_most_one_variable_at_its_end_with_a_sample():
    fixed = {"type": "URL", "text": "Shop", "url": "https://acme.example/shop"}
    assert create(buttons(fixed))
    variable = {**fixed, "url": "https://acme.example/t/{{1}}", "example": ["https://acme.example/t/42"]}
    assert create(buttons(variable))
    refused(buttons({**fixed, "url": "ftp://acme.example"}), r"url must be an http\(s\) address")
    refused(buttons({**variable, "url": "https://acme.example/{{1}}/track"}), "only at its end")
    refused(buttons({**variable, "url": "https://acme.example/{{1}}/{{2}}"}), "only at its end")
    refused(buttons({**variable, "example": None}), r"example must be \[")
    refused(buttons({**fixed, "example": ["https://x.io"]}), "takes no example")


def test_a_phone_button_needs_a_number_with_its_country_code():
    button = {"type": "PHONE_NUMBER", "text": "Call", "phone_number": "9876543210"}
    refused(buttons(button), "with its country code")
    refused(buttons({**button, "phone_number": "+1 555"}), "phone_number")


def test_metas_button_limits():
    quick = {"type": "QUICK_REPLY", "text": "Yes"}
    url = {"type": "URL", "text": "Shop", "url": "https://acme.example"}
    phone = {"type": "PHONE_NUMBER", "text": "Call", "phone_number": "+919876543210"}
    assert create(buttons(*[quick] * 10))
    refused(buttons(*[quick] * 11), "1 to 10 buttons")
    refused([BODY, {"type": "BUTTONS", "buttons": []}], "1 to 10 buttons")
    refused(buttons(url, url, url), "at most 2 URL buttons")
    refused(buttons(phone, phone), "at most 1 PHONE_NUMBER button")
    assert create(buttons(url, phone, quick, quick))
    refused(buttons(quick, url, quick), "QUICK_REPLY buttons must come together")
