"""What each message type must carry, checked against WhatsApp's own limits before anything is stored."""

from __future__ import annotations

from typing import Any

from kaanha.errors import InvalidRequest
from kaanha.messages.schemas import SendRequest

TEXT_LIMIT = 4096
CAPTION_LIMIT = 1024
MAX_REPLY_BUTTONS = 3
MAX_LIST_ROWS = 10
MAX_LIST_SECTIONS = 10

# The fields each type may use; anything else in the request is a mistake worth reporting.
TYPE_FIELDS: dict[str, set[str]] = {
    "text": {"text", "preview_url"},
    "image": {"media_url", "media_id", "caption"},
    "document": {"media_url", "media_id", "caption", "filename"},
    "audio": {"media_url", "media_id"},
    "video": {"media_url", "media_id", "caption"},
    "template": {"template_name", "language", "components"},
    "interactive": {"interactive"},
    "location": {"latitude", "longitude", "name", "address"},
    "contact": {"contacts"},
    "reaction": {"message_id", "emoji"},
}
_COMMON = {"to", "type", "reply_to", "quick_reply"}
MEDIA_TYPES = {"image", "document", "audio", "video"}


class InvalidMessage(InvalidRequest):
    code = "invalid_message"


def _camel(field: str) -> str:
    head, *rest = field.split("_")
    return head + "".join(part.title() for part in rest)


def check_fields(request: SendRequest) -> None:
    allowed = TYPE_FIELDS[request.type] | _COMMON
    stray = sorted(_camel(field) for field in request.model_fields_set - allowed if getattr(request, field) is not None)
    if stray:
        raise InvalidMessage(f"{', '.join(stray)} do(es) not apply to a '{request.type}' message")


def _require(value: object, field: str, message_type: str) -> None:
    if value is None or value == [] or (isinstance(value, str) and not value.strip()):
        raise InvalidMessage(f"A '{message_type}' message needs '{_camel(field)}'")


def text_content(request: SendRequest) -> dict[str, Any]:
    _require(request.text, "text", "text")
    assert request.text is not None
    if len(request.text) > TEXT_LIMIT:
        raise InvalidMessage(f"text is {len(request.text)} characters; WhatsApp allows at most {TEXT_LIMIT}")
    content: dict[str, Any] = {"text": request.text}
    if request.preview_url is not None:
        content["previewUrl"] = request.preview_url
    return content


def media_request_content(request: SendRequest) -> dict[str, Any]:
    """The media fields as given; the service resolves `mediaId` and checks type and size."""
    if bool(request.media_url) == bool(request.media_id):
        raise InvalidMessage(f"A '{request.type}' message needs exactly one of 'mediaUrl' or 'mediaId'")
    if request.caption is not None and len(request.caption) > CAPTION_LIMIT:
        raise InvalidMessage(f"caption is {len(request.caption)} characters; WhatsApp allows at most {CAPTION_LIMIT}")
    if request.type == "document" and request.media_url and not request.filename:
        raise InvalidMessage("A 'document' sent by 'mediaUrl' needs a 'filename'")
    content: dict[str, Any] = {}
    for field in ("media_url", "media_id", "caption", "filename"):
        value = getattr(request, field)
        if value:
            content[_camel(field)] = value
    return content


def location_content(request: SendRequest) -> dict[str, Any]:
    for field in ("latitude", "longitude", "name"):
        _require(getattr(request, field), field, "location")
    assert request.latitude is not None
    assert request.longitude is not None
    if not -90 <= request.latitude <= 90:
        raise InvalidMessage(f"latitude {request.latitude} is outside -90..90")
    if not -180 <= request.longitude <= 180:
        raise InvalidMessage(f"longitude {request.longitude} is outside -180..180")
    content: dict[str, Any] = {
        "latitude": request.latitude,
        "longitude": request.longitude,
        "name": request.name,
    }
    if request.address:
        content["address"] = request.address
    return content


def contacts_content(request: SendRequest) -> dict[str, Any]:
    _require(request.contacts, "contacts", "contact")
    assert request.contacts is not None
    if len(request.contacts) > 257:
        raise InvalidMessage("At most 257 contact cards in one message")
    for index, card in enumerate(request.contacts):
        name = card.get("name")
        if not isinstance(name, dict) or not str(name.get("formatted_name") or name.get("formattedName") or ""):
            raise InvalidMessage(f"contacts[{index}] needs name.formatted_name")
        phones = card.get("phones", [])
        if not isinstance(phones, list) or not all(isinstance(p, dict) for p in phones):
            raise InvalidMessage(f"contacts[{index}].phones must be a list of objects")
    return {"contacts": request.contacts}


def reaction_content(request: SendRequest) -> dict[str, Any]:
    _require(request.message_id, "message_id", "reaction")
    if request.emoji is None:
        raise InvalidMessage("A 'reaction' message needs 'emoji' (empty to remove a reaction)")
    if len(request.emoji) > 10 or any(char.isalnum() for char in request.emoji):
        raise InvalidMessage("emoji must be a single emoji, or empty to remove the reaction")
    return {"messageId": request.message_id, "emoji": request.emoji}


def template_request_content(request: SendRequest) -> dict[str, Any]:
    _require(request.template_name, "template_name", "template")
    _require(request.language, "language", "template")
    components = request.components or []
    for index, component in enumerate(components):
        if not isinstance(component.get("type"), str):
            raise InvalidMessage(f"components[{index}] needs a 'type' (header, body or button)")
        parameters = component.get("parameters", [])
        if not isinstance(parameters, list) or not all(isinstance(p, dict) for p in parameters):
            raise InvalidMessage(f"components[{index}].parameters must be a list of objects")
        if not all(isinstance(p.get("type", "text"), str) for p in parameters):
            raise InvalidMessage(f"components[{index}].parameters[].type must be a string such as 'text'")
    return {"templateName": request.template_name, "language": request.language, "components": components}


def _text_within(value: Any, limit: int, where: str, *, required: bool = True) -> None:
    if value is None and not required:
        return
    if not isinstance(value, str) or not value.strip():
        raise InvalidMessage(f"interactive {where} needs text")
    if len(value) > limit:
        raise InvalidMessage(f"interactive {where} is {len(value)} characters; WhatsApp allows at most {limit}")


def interactive_content(request: SendRequest) -> dict[str, Any]:
    """Reply buttons, lists and CTA URLs, in WhatsApp's own interactive object shape."""
    interactive = request.interactive
    _require(interactive, "interactive", "interactive")
    assert interactive is not None
    kind = interactive.get("type")
    body = interactive.get("body")
    _text_within(body.get("text") if isinstance(body, dict) else None, 1024, "body.text")
    footer = interactive.get("footer")
    if footer is not None:
        _text_within(footer.get("text") if isinstance(footer, dict) else None, 60, "footer.text")
    action = interactive.get("action")
    if not isinstance(action, dict):
        raise InvalidMessage("interactive needs an 'action' object")
    if kind == "button":
        _check_buttons(action)
    elif kind == "list":
        _check_list(action)
    elif kind == "cta_url":
        parameters = action.get("parameters")
        if not isinstance(parameters, dict):
            raise InvalidMessage("a cta_url needs action.parameters with display_text and url")
        _text_within(parameters.get("display_text"), 20, "action.parameters.display_text")
        url = parameters.get("url")
        if not isinstance(url, str) or not url.startswith(("https://", "http://")):
            raise InvalidMessage("a cta_url needs action.parameters.url, an http(s) URL")
    else:
        raise InvalidMessage("interactive.type must be 'button', 'list' or 'cta_url'")
    return {"interactive": interactive}


def _check_buttons(action: dict[str, Any]) -> None:
    buttons = action.get("buttons")
    if not isinstance(buttons, list) or not buttons:
        raise InvalidMessage("interactive buttons need action.buttons")
    if len(buttons) > MAX_REPLY_BUTTONS:
        raise InvalidMessage(f"{len(buttons)} buttons given; WhatsApp allows at most {MAX_REPLY_BUTTONS}")
    ids = set()
    for index, button in enumerate(buttons):
        reply = button.get("reply") if isinstance(button, dict) else None
        if not isinstance(reply, dict) or not reply.get("id"):
            raise InvalidMessage(f"action.buttons[{index}] needs reply.id and reply.title")
        _text_within(reply.get("title"), 20, f"action.buttons[{index}].reply.title")
        if reply["id"] in ids:
            raise InvalidMessage(f"button id '{reply['id']}' is used twice")
        ids.add(reply["id"])


def _check_list(action: dict[str, Any]) -> None:
    _text_within(action.get("button"), 20, "action.button")
    sections = action.get("sections")
    if not isinstance(sections, list) or not sections:
        raise InvalidMessage("an interactive list needs action.sections")
    if len(sections) > MAX_LIST_SECTIONS:
        raise InvalidMessage(f"{len(sections)} sections given; WhatsApp allows at most {MAX_LIST_SECTIONS}")
    rows = 0
    for s_index, section in enumerate(sections):
        section_rows = section.get("rows") if isinstance(section, dict) else None
        if not isinstance(section_rows, list) or not section_rows:
            raise InvalidMessage(f"action.sections[{s_index}] needs rows")
        for r_index, row in enumerate(section_rows):
            where = f"action.sections[{s_index}].rows[{r_index}]"
            if not isinstance(row, dict) or not row.get("id"):
                raise InvalidMessage(f"{where} needs an id and a title")
            _text_within(row.get("title"), 24, f"{where}.title")
            _text_within(row.get("description"), 72, f"{where}.description", required=False)
        rows += len(section_rows)
    if rows > MAX_LIST_ROWS:
        raise InvalidMessage(f"{rows} list rows given; WhatsApp allows at most {MAX_LIST_ROWS} in all")


BUILDERS = {
    "text": text_content,
    "image": media_request_content,
    "document": media_request_content,
    "audio": media_request_content,
    "video": media_request_content,
    "template": template_request_content,
    "interactive": interactive_content,
    "location": location_content,
    "contact": contacts_content,
    "reaction": reaction_content,
}


def build_content(request: SendRequest) -> dict[str, Any]:
    """The message's stored `content`, after checking the type's fields and limits."""
    check_fields(request)
    return BUILDERS[request.type](request)
