"""Validation of `POST /{phone-number-id}/messages` bodies, refusing what Meta refuses.

Only the shape is checked here (pure functions, no state except "is this media id known"); the window,
templates and rate limits need the fake's state and live in `fake.py`. Limits come from cloud-api.md;
the ones marked unverified there are used as documented defaults.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from kaanha.testing.fake_graph.errors import GraphError, invalid

MESSAGE_TYPES = (
    "text",
    "image",
    "audio",
    "video",
    "document",
    "sticker",
    "location",
    "contacts",
    "interactive",
    "template",
    "reaction",
)
MEDIA_TYPES = frozenset({"image", "audio", "video", "document", "sticker"})
CAPTIONED = frozenset({"image", "video", "document"})
TEXT_MAX = 4096
CAPTION_MAX = 1024
CALLBACK_DATA_MAX = 512
_DIGITS = re.compile(r"\d{5,20}")
_URL = re.compile(r"https?://\S+")

MediaExists = Callable[[str], bool]


def check_envelope(body: Any) -> tuple[str, str]:
    """The common fields of a send; returns (to, type). `type` defaults to text, as on Meta."""
    if not isinstance(body, dict):
        raise invalid("The request body must be a JSON object.")
    if body.get("messaging_product") != "whatsapp":
        raise invalid("Param messaging_product is required and must be 'whatsapp'.")
    if body.get("recipient_type", "individual") != "individual":
        raise invalid("Param recipient_type must be 'individual'.")
    to = body.get("to")
    if not isinstance(to, str) or not _DIGITS.fullmatch(to):
        raise invalid("Param to must be the recipient's phone number in digits only (country code first).")
    kind = body.get("type", "text")
    if kind not in MESSAGE_TYPES:
        raise invalid(f"Param type must be one of {{{', '.join(t.upper() for t in MESSAGE_TYPES)}}}.")
    callback = body.get("biz_opaque_callback_data")
    if callback is not None and (not isinstance(callback, str) or len(callback) > CALLBACK_DATA_MAX):
        raise invalid(f"Param biz_opaque_callback_data must be a string of at most {CALLBACK_DATA_MAX} characters.")
    _check_context(body.get("context"))
    return to, kind


def check_message(kind: str, body: dict[str, Any], media_exists: MediaExists) -> None:
    """The type object (`body[kind]`) must match what Meta accepts for that type."""
    if kind not in body:
        raise invalid(f"Param {kind} is required for a message of type {kind}.")
    if kind in MEDIA_TYPES:
        check_media_object(kind, body[kind], kind, media_exists)
        return
    _CHECKS[kind](body[kind])


def _check_context(context: Any) -> None:
    if context is None:
        return
    message_id = context.get("message_id") if isinstance(context, dict) else None
    if not isinstance(message_id, str) or not message_id:
        raise invalid("Param context['message_id'] is required when context is given.")


def _object(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise invalid(f"Param {where} must be a JSON object.")
    return value


def _list(value: Any, where: str, *, least: int, most: int | None = None) -> list[Any]:
    if not isinstance(value, list) or len(value) < least or (most is not None and len(value) > most):
        limit = f"{least} to {most}" if most is not None else f"at least {least}"
        raise invalid(f"Param {where} must be an array of {limit} items.")
    return value


def _string(
    obj: dict[str, Any], key: str, where: str, *, max_len: int | None = None, required: bool = True
) -> str | None:
    value = obj.get(key)
    if value is None:
        if required:
            raise invalid(f"Param {where}['{key}'] is required.")
        return None
    if not isinstance(value, str) or (required and not value.strip()):
        raise invalid(f"Param {where}['{key}'] must be a non-empty string.")
    if max_len is not None and len(value) > max_len:
        raise invalid(f"Param {where}['{key}'] must be at most {max_len} characters long.")
    return value


def _check_text(value: Any) -> None:
    text = _object(value, "text")
    _string(text, "body", "text", max_len=TEXT_MAX)
    if not isinstance(text.get("preview_url", False), bool):
        raise invalid("Param text['preview_url'] must be a boolean.")


def check_media_object(kind: str, value: Any, where: str, media_exists: MediaExists) -> None:
    """Exactly one of `id` (a media id the fake knows) or `link` (http/https); caption/filename by type."""
    media = _object(value, where)
    has_id, has_link = "id" in media, "link" in media
    if has_id == has_link:
        raise invalid(f"Param {where} must have exactly one of 'id' or 'link'.")
    if has_id and (not isinstance(media["id"], str) or not media_exists(media["id"])):
        raise GraphError(131053, f"Media id {media['id']!r} does not exist or has been deleted.")
    if has_link and (not isinstance(media["link"], str) or not _URL.fullmatch(media["link"])):
        raise invalid(f"Param {where}['link'] must be an http or https URL.")
    if "caption" in media:
        if kind not in CAPTIONED:
            raise invalid(f"Param {where}['caption'] is not allowed for {kind} messages.")
        _string(media, "caption", where, max_len=CAPTION_MAX, required=False)
    if "filename" in media and kind != "document":
        raise invalid(f"Param {where}['filename'] is only allowed for documents.")


def _check_location(value: Any) -> None:
    location = _object(value, "location")
    for key, bound in (("latitude", 90), ("longitude", 180)):
        number = location.get(key)
        if isinstance(number, str):
            try:
                number = float(number)
            except ValueError:
                number = None
        if isinstance(number, bool) or not isinstance(number, int | float) or abs(number) > bound:
            raise invalid(f"Param location['{key}'] is required and must be a number within ±{bound}.")
    _string(location, "name", "location", required=False)
    _string(location, "address", "location", required=False)


def _check_contacts(value: Any) -> None:
    contacts = _list(value, "contacts", least=1)
    for index, contact in enumerate(contacts):
        name = _object(_object(contact, f"contacts[{index}]").get("name"), f"contacts[{index}]['name']")
        _string(name, "formatted_name", f"contacts[{index}]['name']")


def _check_reaction(value: Any) -> None:
    reaction = _object(value, "reaction")
    _string(reaction, "message_id", "reaction")
    emoji = reaction.get("emoji", "")
    if not isinstance(emoji, str):
        raise invalid("Param reaction['emoji'] must be a string (empty to remove the reaction).")


def _check_template(value: Any) -> None:
    template = _object(value, "template")
    _string(template, "name", "template", max_len=512)
    language = _object(template.get("language"), "template['language']")
    _string(language, "code", "template['language']")
    for index, component in enumerate(_list(template.get("components", []), "template['components']", least=0)):
        _check_template_component(_object(component, f"template['components'][{index}]"), index)


_PARAMETER_TYPES = {
    "header": {"text", "image", "video", "document", "location"},
    "body": {"text", "currency", "date_time"},
    "button": {"payload", "text", "coupon_code", "action"},
}


def _check_template_component(component: dict[str, Any], index: int) -> None:
    where = f"template['components'][{index}]"
    kind = component.get("type")
    if not isinstance(kind, str) or kind.lower() not in {"header", "body", "button", "carousel", "limited_time_offer"}:
        raise invalid(f"Param {where}['type'] must be one of header, body, button, carousel, limited_time_offer.")
    allowed = _PARAMETER_TYPES.get(kind.lower())
    parameters = component.get("parameters", [])
    if allowed is None or not isinstance(parameters, list):
        return
    for position, parameter in enumerate(parameters):
        _check_template_parameter(_object(parameter, f"{where}['parameters'][{position}]"), allowed)


def _check_template_parameter(parameter: dict[str, Any], allowed: set[str]) -> None:
    kind = parameter.get("type")
    if kind not in allowed:
        raise invalid(f"Parameter type must be one of {', '.join(sorted(allowed))}.")
    if kind not in parameter:
        raise GraphError(131008, f"Parameter of type {kind} is missing its '{kind}' value.")
    if kind == "text" and (not isinstance(parameter["text"], str) or not parameter["text"].strip()):
        raise GraphError(131008, "Parameter of type text must have a non-empty 'text' value.")


def _check_interactive(value: Any) -> None:
    interactive = _object(value, "interactive")
    kind = interactive.get("type")
    check = _INTERACTIVE.get(kind) if isinstance(kind, str) else None
    if check is None:
        raise invalid(f"Param interactive['type'] must be one of {', '.join(_INTERACTIVE)}.")
    body_required = kind not in {"product", "catalog_message"}
    body = interactive.get("body")
    if body is not None or body_required:
        _string(_object(body, "interactive['body']"), "text", "interactive['body']", max_len=1024)
    _check_header(interactive.get("header"), required=kind == "product_list")
    if interactive.get("footer") is not None:
        _string(_object(interactive["footer"], "interactive['footer']"), "text", "interactive['footer']", max_len=60)
    check(_object(interactive.get("action"), "interactive['action']"))


def _check_header(header: Any, *, required: bool) -> None:
    if header is None:
        if required:
            raise invalid("Param interactive['header'] is required for product_list messages.")
        return
    header = _object(header, "interactive['header']")
    kind = header.get("type")
    if kind == "text":
        _string(header, "text", "interactive['header']", max_len=60)
    elif kind in {"image", "video", "document"}:
        media = _object(header.get(kind), f"interactive['header']['{kind}']")
        if ("id" in media) == ("link" in media):
            raise invalid(f"Param interactive['header']['{kind}'] must have exactly one of 'id' or 'link'.")
    else:
        raise invalid("Param interactive['header']['type'] must be one of text, image, video, document.")


def _check_buttons(action: dict[str, Any]) -> None:
    buttons = _list(action.get("buttons"), "interactive['action']['buttons']", least=1, most=3)
    ids: set[str] = set()
    for index, button in enumerate(buttons):
        where = f"interactive['action']['buttons'][{index}]"
        if _object(button, where).get("type") != "reply":
            raise invalid(f"Param {where}['type'] must be 'reply'.")
        reply = _object(button.get("reply"), f"{where}['reply']")
        ids.add(_string(reply, "id", f"{where}['reply']", max_len=256) or "")
        _string(reply, "title", f"{where}['reply']", max_len=20)
    if len(ids) != len(buttons):
        raise invalid("Buttons must have unique ids.")


def _check_list(action: dict[str, Any]) -> None:
    _string(action, "button", "interactive['action']", max_len=20)
    sections = _list(action.get("sections"), "interactive['action']['sections']", least=1, most=10)
    row_ids: list[str] = []
    for index, section in enumerate(sections):
        where = f"interactive['action']['sections'][{index}]"
        _string(_object(section, where), "title", where, max_len=24, required=len(sections) > 1)
        for position, row in enumerate(_list(section.get("rows"), f"{where}['rows']", least=1, most=10)):
            row_where = f"{where}['rows'][{position}]"
            row_ids.append(_string(_object(row, row_where), "id", row_where, max_len=200) or "")
            _string(row, "title", row_where, max_len=24)
            _string(row, "description", row_where, max_len=72, required=False)
    if len(row_ids) > 10:
        raise invalid("A list message can have at most 10 rows across all sections.")
    if len(set(row_ids)) != len(row_ids):
        raise invalid("Rows must have unique ids.")


def _check_cta_url(action: dict[str, Any]) -> None:
    if action.get("name") != "cta_url":
        raise invalid("Param interactive['action']['name'] must be 'cta_url'.")
    parameters = _object(action.get("parameters"), "interactive['action']['parameters']")
    _string(parameters, "display_text", "interactive['action']['parameters']", max_len=20)
    url = _string(parameters, "url", "interactive['action']['parameters']")
    if not _URL.fullmatch(url or ""):
        raise invalid("Param interactive['action']['parameters']['url'] must be an http or https URL.")


def _check_flow(action: dict[str, Any]) -> None:
    if action.get("name") != "flow":
        raise invalid("Param interactive['action']['name'] must be 'flow'.")
    where = "interactive['action']['parameters']"
    parameters = _object(action.get("parameters"), where)
    if str(parameters.get("flow_message_version")) != "3":
        raise invalid(f"Param {where}['flow_message_version'] must be '3'.")
    _string(parameters, "flow_cta", where, max_len=30)
    if ("flow_id" in parameters) == ("flow_name" in parameters):
        raise invalid(f"Param {where} must have exactly one of 'flow_id' or 'flow_name'.")
    if parameters.get("flow_action", "navigate") not in {"navigate", "data_exchange"}:
        raise invalid(f"Param {where}['flow_action'] must be 'navigate' or 'data_exchange'.")
    if "flow_action_payload" in parameters:
        _object(parameters["flow_action_payload"], f"{where}['flow_action_payload']")


def _check_product(action: dict[str, Any]) -> None:
    _string(action, "catalog_id", "interactive['action']")
    _string(action, "product_retailer_id", "interactive['action']")


def _check_product_list(action: dict[str, Any]) -> None:
    _string(action, "catalog_id", "interactive['action']")
    sections = _list(action.get("sections"), "interactive['action']['sections']", least=1, most=10)
    items = 0
    for index, section in enumerate(sections):
        where = f"interactive['action']['sections'][{index}]"
        products = _list(_object(section, where).get("product_items"), f"{where}['product_items']", least=1, most=30)
        for position, product in enumerate(products):
            _string(_object(product, f"{where}['product_items'][{position}]"), "product_retailer_id", where)
        items += len(products)
    if items > 30:
        raise invalid("A multi-product message can have at most 30 products.")


def _check_named_action(name: str) -> Callable[[dict[str, Any]], None]:
    def check(action: dict[str, Any]) -> None:
        if action.get("name") != name:
            raise invalid(f"Param interactive['action']['name'] must be '{name}'.")

    return check


_INTERACTIVE: dict[str, Callable[[dict[str, Any]], None]] = {
    "button": _check_buttons,
    "list": _check_list,
    "cta_url": _check_cta_url,
    "flow": _check_flow,
    "product": _check_product,
    "product_list": _check_product_list,
    "catalog_message": _check_named_action("catalog_message"),
    "location_request_message": _check_named_action("send_location"),
}

_CHECKS: dict[str, Callable[[Any], None]] = {
    "text": _check_text,
    "location": _check_location,
    "contacts": _check_contacts,
    "reaction": _check_reaction,
    "template": _check_template,
    "interactive": _check_interactive,
}


def check_read_receipt(body: dict[str, Any]) -> str:
    """`{"messaging_product":"whatsapp","status":"read","message_id":...}`; returns the message id."""
    if body.get("messaging_product") != "whatsapp":
        raise invalid("Param messaging_product is required and must be 'whatsapp'.")
    message_id = body.get("message_id")
    if not isinstance(message_id, str) or not message_id:
        raise invalid("Param message_id is required.")
    indicator = body.get("typing_indicator")
    if indicator is not None and (not isinstance(indicator, dict) or indicator.get("type") != "text"):
        raise invalid("Param typing_indicator['type'] must be 'text'.")
    return message_id
