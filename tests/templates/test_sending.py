"""Sending a template: each part gets exactly the parameters it needs, the preview, and Meta's request body."""

from __future__ import annotations

from typing import Any

import pytest

from kaanha.models import Template
from kaanha.templates.rules import check_new_template
from kaanha.templates.service import TemplateParametersMismatch, check_parameters, render_preview
from kaanha.testing.fake_graph import templates as fake_templates
from kaanha.whatsapp.cloud_api.bodies import message_body

ORDER_BODY = {
    "type": "BODY",
    "text": "Hi {{1}}, your order {{2}} is on its way.",
    "example": {"body_text": [["A", "B"]]},
}
NAMED_BODY = {
    "type": "BODY",
    "text": "Hi {{first_name}}, order {{order_id}} ships today.",
    "example": {
        "body_text_named_params": [
            {"param_name": "first_name", "example": "Asha"},
            {"param_name": "order_id", "example": "#1"},
        ]
    },
}
BUTTONS = {
    "type": "BUTTONS",
    "buttons": [
        {
            "type": "URL",
            "text": "Track",
            "url": "https://acme.example/t/{{1}}",
            "example": ["https://acme.example/t/1"],
        },
        {"type": "QUICK_REPLY", "text": "Thanks"},
        {"type": "PHONE_NUMBER", "text": "Call us", "phone_number": "+919876543210"},
    ],
}


def template(name: str, components: list[dict[str, Any]], parameter_format: str = "POSITIONAL") -> Template:
    """A template as `POST /templates` would store it (through the same rules)."""
    new = check_new_template(
        name=name, language="en_US", category="UTILITY", parameter_format=parameter_format, components=components
    )
    return Template(
        id="tpl_x",
        name=new.name,
        language=new.language,
        category=new.category,
        status="APPROVED",
        components=new.components,
        parameter_format=new.parameter_format,
    )


def text(value: str, name: str | None = None) -> dict[str, Any]:
    parameter = {"type": "text", "text": value}
    return {**parameter, "parameter_name": name} if name else parameter


def body(*parameters: dict[str, Any]) -> dict[str, Any]:
    return {"type": "body", "parameters": list(parameters)}


def url_button(index: int, value: str) -> dict[str, Any]:
    return {"type": "button", "sub_type": "url", "index": str(index), "parameters": [text(value)]}


def mismatch(tpl: Template, components: list[Any], match: str) -> None:
    with pytest.raises(TemplateParametersMismatch, match=match):
        check_parameters(tpl, components)


# --- body ---------------------------------------------------------------------------------------------------


def test_the_body_takes_exactly_its_variables():
    order = template("order_update", [ORDER_BODY])
    check_parameters(order, [body(text("Asha"), text("#7"))])
    mismatch(
        order, [body(text("Asha"))], r"Template 'order_update' body needs 2 parameters \(\{\{1\}\}, \{\{2\}\}\), got 1"
    )
    mismatch(order, [], "body needs 2 parameters")
    mismatch(order, [body(text("a"), text("b"), text("c"))], "got 3")
    mismatch(order, [body(text("Asha"), text(""))], r"body parameter 2 needs its value")
    mismatch(order, [body(text("Asha"), text("line\nbreak"))], "line breaks")
    mismatch(order, [body(text("Asha"), {"type": "image", "image": {"link": "https://x.io/a.png"}})], "type text")
    mismatch(order, [body(text("Asha"), text("#7", "order_id"))], "parameter_name is for NAMED templates")
    mismatch(order, [body(text("Asha"), text("x" * 1100))], "1,024")
    mismatch(order, [body(text("a"), text("b")), body(text("a"), text("b"))], "body twice")


def test_body_parameters_may_be_currency_or_date_time():
    order = template("order_update", [ORDER_BODY])
    currency = {"type": "currency", "currency": {"fallback_value": "₹100", "code": "INR", "amount_1000": 100000}}
    date_time = {"type": "date_time", "date_time": {"fallback_value": "24 November"}}
    check_parameters(order, [body(currency, date_time)])
    mismatch(order, [body({"type": "currency", "currency": {"code": "INR"}}, date_time)], "fallback_value")
    assert render_preview(order, [body(currency, date_time)]) == "Hi ₹100, your order 24 November is on its way."


def test_a_template_without_variables_takes_no_parameters():
    hello = template("hello", [{"type": "BODY", "text": "Hello there, welcome to Acme."}])
    check_parameters(hello, [])
    check_parameters(hello, [body()])
    mismatch(hello, [body(text("x"))], "body takes no parameters, got 1")
    mismatch(hello, [{"type": "header", "parameters": [text("x")]}], "has no header")
    mismatch(hello, [{"type": "footer", "parameters": [text("x")]}], "takes no 'footer' component")
    track = template("track", [ORDER_BODY, BUTTONS])
    mismatch(track, [{"type": "buttons"}], "takes no 'buttons' component")


def test_named_templates_take_parameters_by_name():
    named = template("shipping", [NAMED_BODY], "NAMED")
    check_parameters(named, [body(text("#7", "order_id"), text("Asha", "first_name"))])
    mismatch(
        named, [body(text("Asha"), text("#7"))], r"parameter_name for each variable \(missing first_name, order_id\)"
    )
    mismatch(named, [body(text("Asha", "first_name"), text("#7", "order"))], "missing order_id")
    preview = render_preview(named, [body(text("#7", "order_id"), text("Asha", "first_name"))])
    assert preview == "Hi Asha, order #7 ships today."


# --- header -------------------------------------------------------------------------------------------------


def test_a_text_header_takes_its_variable_as_text():
    header = {"type": "HEADER", "format": "TEXT", "text": "Order {{1}}", "example": {"header_text": ["#1"]}}
    order = template("order_update", [header, ORDER_BODY, {"type": "FOOTER", "text": "Acme Store"}])
    components = [{"type": "header", "parameters": [text("#7")]}, body(text("Asha"), text("#7"))]
    check_parameters(order, components)
    mismatch(order, components[1:], r"header needs 1 parameter \(\{\{1\}\}\), got 0")
    assert render_preview(order, components) == "Order #7\nHi Asha, your order #7 is on its way.\nAcme Store"


@pytest.mark.parametrize("media", ["image", "video", "document"])
def test_a_media_header_takes_a_parameter_of_its_type(media):
    promo = template("promo", [{"type": "HEADER", "format": media.upper()}, ORDER_BODY])
    given = body(text("Asha"), text("#7"))
    check_parameters(
        promo, [{"type": "header", "parameters": [{"type": media, media: {"link": "https://x.io/f"}}]}, given]
    )
    check_parameters(promo, [{"type": "header", "parameters": [{"type": media, media: {"id": "med_1"}}]}, given])
    wanted = rf'header is {media.upper()}: give a parameter \{{"type": "{media}", "{media}": \{{"link"\|"id": ...\}}\}}'
    mismatch(promo, [given], wanted)
    mismatch(promo, [{"type": "header", "parameters": [text("x")]}, given], wanted)
    mismatch(promo, [{"type": "header", "parameters": [{"type": media, media: {}}]}, given], wanted)
    other = "video" if media != "video" else "image"
    mismatch(promo, [{"type": "header", "parameters": [{"type": other, other: {"id": "1"}}]}, given], wanted)
    assert render_preview(promo, [given]) == "Hi Asha, your order #7 is on its way."


def test_a_location_header_takes_a_location():
    visit = template("visit", [{"type": "HEADER", "format": "LOCATION"}, ORDER_BODY])
    given = body(text("Asha"), text("#7"))
    place = {"type": "location", "location": {"latitude": 12.97, "longitude": 77.59, "name": "Acme"}}
    check_parameters(visit, [{"type": "header", "parameters": [place]}, given])
    mismatch(visit, [given], "header is LOCATION")


# --- buttons ------------------------------------------------------------------------------------------------


def test_a_url_button_with_a_variable_needs_it():
    track = template("track", [ORDER_BODY, BUTTONS])
    given = body(text("Asha"), text("#7"))
    check_parameters(track, [given, url_button(0, "7")])
    check_parameters(track, [given, {**url_button(0, "7"), "index": 0}])
    mismatch(track, [given], r"Template 'track' button 0 \(URL\) needs its URL variable: give \{\"type\": \"button\"")
    mismatch(track, [given, {**url_button(0, "7"), "sub_type": "quick_reply"}], r"button 0 \(URL\) takes one parameter")
    mismatch(track, [given, url_button(0, "")], r"button 0 \(URL\) takes one parameter")
    mismatch(track, [given, url_button(0, "7"), url_button(0, "8")], "button 0 twice")
    mismatch(track, [given, url_button(5, "7")], "has no button 5 \\(it has buttons 0 to 2\\)")
    mismatch(track, [given, url_button(0, "7"), {"type": "button", "sub_type": "url"}], 'needs its "index"')


def test_quick_replies_may_take_a_payload_and_phone_buttons_take_nothing():
    track = template("track", [ORDER_BODY, BUTTONS])
    given = [body(text("Asha"), text("#7")), url_button(0, "7")]
    payload = {
        "type": "button",
        "sub_type": "quick_reply",
        "index": "1",
        "parameters": [{"type": "payload", "payload": "THANKS_7"}],
    }
    check_parameters(track, [*given, payload])
    mismatch(track, [*given, {**payload, "parameters": [text("x")]}], r"button 1 \(QUICK_REPLY\) takes one parameter")
    phone = {"type": "button", "sub_type": "phone_number", "index": "2", "parameters": [text("x")]}
    mismatch(track, [*given, phone], r"button 2 \(PHONE_NUMBER\) takes no parameters")
    fixed = template(
        "shop",
        [ORDER_BODY, {"type": "BUTTONS", "buttons": [{"type": "URL", "text": "Shop", "url": "https://acme.example"}]}],
    )
    mismatch(fixed, [given[0], url_button(0, "7")], r"button 0 \(URL\) takes no parameters")


# --- what goes to Meta --------------------------------------------------------------------------------------


def test_a_checked_send_maps_to_a_body_the_fake_graph_api_accepts():
    """The same parameters, through bodies.message_body, pass the fake's own check of a template send."""
    header = {"type": "HEADER", "format": "IMAGE"}
    named = template("shipping", [header, NAMED_BODY, BUTTONS], "NAMED")
    components = [
        {"type": "header", "parameters": [{"type": "image", "image": {"link": "https://acme.example/a.png"}}]},
        body(text("Asha", "first_name"), text("#7", "order_id")),
        {"type": "button", "sub_type": "URL", "index": 0, "parameters": [text("7")]},
        {
            "type": "button",
            "sub_type": "quick_reply",
            "index": "1",
            "parameters": [{"type": "payload", "payload": "OK"}],
        },
    ]
    check_parameters(named, components)
    content = {"templateName": "shipping", "language": "en_US", "components": components, "category": "UTILITY"}
    sent = message_body("template", content, to="919876543210", reply_to_wamid=None, callback_data=None, media_ids={})
    graph = sent["template"]
    assert graph["components"][1]["parameters"][0] == {"type": "text", "text": "Asha", "parameter_name": "first_name"}
    assert graph["components"][2] == {"type": "button", "sub_type": "url", "index": "0", "parameters": [text("7")]}
    spec = fake_templates.check_new_template(
        {
            "name": "shipping",
            "language": "en_US",
            "category": "UTILITY",
            "parameter_format": "NAMED",
            "components": named.components,
        }
    )
    fake_templates.check_send_parameters(spec, graph["components"])
