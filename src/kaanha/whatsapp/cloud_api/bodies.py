"""Graph API request bodies (`POST /{phone-number-id}/messages`) built from our stored messages.

A stored message's `content` is our camelCase shape (see `kaanha.messages.content`); Meta wants its
own snake_case objects. Media we host is referred to by our id (`med_...`), which Meta doesn't know:
the caller uploads it first (`media_to_upload`) and passes the Meta ids it got back as `media_ids`.
Nothing here touches the network or the database, and `content` is never mutated.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Callable, Mapping
from typing import Any

# Our media ids come from `new_id("med")`; Meta's are numeric, so the prefix tells them apart.
OUR_MEDIA_PREFIX = "med_"
# Objects that carry media in template parameters and interactive headers.
HEADER_MEDIA_TYPES = ("image", "video", "document")
_CAPTIONED = {"image", "video", "document"}
_CAMEL_HUMP = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")

Content = dict[str, Any]
Body = dict[str, Any]


def message_body(
    message_type: str,
    content: dict[str, Any],
    *,
    to: str,
    reply_to_wamid: str | None,
    callback_data: str | None,
    media_ids: Mapping[str, str],
) -> dict[str, Any]:
    """The Graph API request body (POST /{phone-number-id}/messages) for one of our stored messages."""
    builder = _BUILDERS.get(message_type)
    if builder is None:
        raise ValueError(f"No WhatsApp body for message type '{message_type}'")
    meta_type = "contacts" if message_type == "contact" else message_type
    body: Body = {
        "messaging_product": "whatsapp",
        "recipient_type": "individual",
        "to": to,
        "type": meta_type,
        meta_type: builder(message_type, content, media_ids),
    }
    if reply_to_wamid:
        body["context"] = {"message_id": reply_to_wamid}
    if callback_data:
        # Echoed back in status webhooks: matches a status to its message even without the wamid.
        body["biz_opaque_callback_data"] = callback_data
    return body


def media_to_upload(message_type: str, content: dict[str, Any]) -> list[str]:
    """Our media ids (content['mediaId'], and template header parameters that reference our media by id)
    that must be uploaded to Meta before sending; interactive headers that reference our media count too."""
    if message_type == "template":
        found = [_our_media_id(p) for c in content.get("components") or [] for p in _header_parameters(c)]
    elif message_type == "interactive":
        found = [_our_media_id(content.get("interactive", {}).get("header"))]
    else:
        found = [content.get("mediaId")]
    # Unique and in order: each file is uploaded once even if a message refers to it twice.
    return list(dict.fromkeys(media_id for media_id in found if media_id))


def mark_read_body(whatsapp_message_id: str, *, typing: bool = False) -> dict[str, Any]:
    """Marks a customer's message read (blue ticks); `typing` also shows them a typing indicator."""
    body: Body = {"messaging_product": "whatsapp", "status": "read", "message_id": whatsapp_message_id}
    if typing:
        body["typing_indicator"] = {"type": "text"}
    return body


# --- one builder per type: (our type, stored content, media ids) -> Meta's object for that type ---------------


def _text(_: str, content: Content, __: Mapping[str, str]) -> Body:
    return {"body": content["text"], "preview_url": bool(content.get("previewUrl", False))}


def _media(message_type: str, content: Content, media_ids: Mapping[str, str]) -> Body:
    if content.get("mediaId"):
        media: Body = {"id": _meta_media_id(content["mediaId"], media_ids)}
    elif content.get("mediaUrl"):
        media = {"link": content["mediaUrl"]}
    else:
        raise ValueError(f"A '{message_type}' message has neither 'mediaId' nor 'mediaUrl'")
    # Meta rejects a caption on audio, so it is only copied for the types that show one.
    if message_type in _CAPTIONED and content.get("caption"):
        media["caption"] = content["caption"]
    if message_type == "document" and content.get("filename"):
        media["filename"] = content["filename"]
    return media


def _location(_: str, content: Content, __: Mapping[str, str]) -> Body:
    location: Body = {"latitude": content["latitude"], "longitude": content["longitude"]}
    for field in ("name", "address"):
        if content.get(field):
            location[field] = content[field]
    return location


def _contacts(_: str, content: Content, __: Mapping[str, str]) -> list[Any]:
    # Cards may arrive in our camelCase (`formattedName`); Meta only reads snake_case keys.
    return [_snake_keys(card) for card in content["contacts"]]


def _reaction(_: str, content: Content, __: Mapping[str, str]) -> Body:
    # The service stores the target's wamid when the reaction is accepted; our own id means nothing to Meta.
    wamid = content.get("whatsappMessageId")
    if not wamid:
        raise ValueError("A reaction needs the WhatsApp id of the message it reacts to ('whatsappMessageId')")
    return {"message_id": wamid, "emoji": content["emoji"]}


def _interactive(_: str, content: Content, media_ids: Mapping[str, str]) -> Body:
    # Already WhatsApp's own object; copied so swapping a header's media id leaves the stored one alone.
    interactive: Body = copy.deepcopy(content["interactive"])
    if isinstance(interactive.get("header"), dict):
        interactive["header"] = _with_meta_media(interactive["header"], media_ids)
    return interactive


def _template(_: str, content: Content, media_ids: Mapping[str, str]) -> Body:
    # Only name, language and components go to Meta: `category` and `preview` are ours, for the inbox.
    components = [_template_component(c, media_ids) for c in content.get("components") or []]
    template: Body = {"name": content["templateName"], "language": {"code": content["language"]}}
    kept = [c for c in components if c is not None]
    if kept:
        template["components"] = kept
    return template


_BUILDERS: dict[str, Callable[[str, Content, Mapping[str, str]], Any]] = {
    "text": _text,
    "image": _media,
    "document": _media,
    "audio": _media,
    "video": _media,
    "location": _location,
    "contact": _contacts,
    "reaction": _reaction,
    "interactive": _interactive,
    "template": _template,
}


# --- helpers --------------------------------------------------------------------------------------------------


def _template_component(component: Content, media_ids: Mapping[str, str]) -> Body | None:
    """One component in Meta's shape; None when it fills nothing (Meta refuses empty parameter lists)."""
    parameters = component.get("parameters") or []
    if not parameters and "cards" not in component:  # a carousel fills its cards, not parameters
        return None
    # A deep copy: nested objects (a currency, a carousel's cards) must not be shared with the stored row.
    normalised: Body = {**copy.deepcopy(component), "type": str(component["type"]).lower()}
    if "sub_type" in normalised:
        normalised["sub_type"] = str(normalised["sub_type"]).lower()
    if "index" in normalised:
        normalised["index"] = str(normalised["index"])  # Meta wants "0", and users naturally write 0
    if parameters:
        is_header = normalised["type"] == "header"
        normalised["parameters"] = [
            _template_parameter(p, media_ids, is_header=is_header) for p in normalised["parameters"]
        ]
    return normalised


def _template_parameter(parameter: Content, media_ids: Mapping[str, str], *, is_header: bool) -> Body:
    kind = str(parameter.get("type", "text")).lower()
    normalised: Body = {**parameter, "type": kind}
    return _with_meta_media(normalised, media_ids) if is_header else normalised


def _header_parameters(component: Content) -> list[Content]:
    if str(component.get("type", "")).lower() != "header":
        return []
    return [p for p in component.get("parameters") or [] if isinstance(p, dict)]


def _with_meta_media(holder: Body, media_ids: Mapping[str, str]) -> Body:
    """A copy of a header (or header parameter) whose media points at Meta's copy of our file."""
    our_id = _our_media_id(holder)
    if our_id is None:
        return holder
    kind = str(holder["type"]).lower()
    return {**holder, "type": kind, kind: {**holder[kind], "id": _meta_media_id(our_id, media_ids)}}


def _our_media_id(holder: Any) -> str | None:
    """Our media id in a header or header parameter (`{"type": "image", "image": {"id": "med_..."}}`)."""
    if not isinstance(holder, dict):
        return None
    kind = str(holder.get("type", "")).lower()
    media = holder.get(kind) if kind in HEADER_MEDIA_TYPES else None
    media_id = media.get("id") if isinstance(media, dict) else None
    if isinstance(media_id, str) and media_id.startswith(OUR_MEDIA_PREFIX):
        return media_id
    return None


def _meta_media_id(our_id: str, media_ids: Mapping[str, str]) -> str:
    try:
        return media_ids[our_id]
    except KeyError:
        raise ValueError(
            f"Media {our_id} has no Meta media id: upload it first (see media_to_upload) and pass its id"
        ) from None


def _snake_keys(value: Any) -> Any:
    """A copy of `value` with every dict key in snake_case (`formattedName` -> `formatted_name`)."""
    if isinstance(value, dict):
        return {_CAMEL_HUMP.sub("_", key).lower(): _snake_keys(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_snake_keys(item) for item in value]
    return value
