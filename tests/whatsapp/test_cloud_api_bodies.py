"""Graph API bodies for every message type, built from content stored the way `POST /send` stores it."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from kaanha.messages.content import build_content
from kaanha.messages.schemas import SendRequest
from kaanha.whatsapp.cloud_api.bodies import mark_read_body, media_to_upload, message_body

WA_ID = "919876543210"
OUR_MEDIA = "med_0lq3x8k2m9abcdefghijklmnop"
META_MEDIA = "1013859600285441"


def stored(request: dict[str, Any], **resolved: Any) -> dict[str, Any]:
    """Content as the service stores it: `build_content`, plus what `_resolve_references` adds."""
    content = build_content(SendRequest.model_validate({"to": f"+{WA_ID}", **request}))
    return {**content, **resolved}


def body_of(
    message_type: str,
    content: dict[str, Any],
    *,
    reply_to_wamid: str | None = None,
    callback_data: str | None = None,
    media_ids: dict[str, str] | None = None,
) -> dict[str, Any]:
    return message_body(
        message_type,
        content,
        to=WA_ID,
        reply_to_wamid=reply_to_wamid,
        callback_data=callback_data,
        media_ids=media_ids or {},
    )


# --- envelope -----------------------------------------------------------------------------------------------


def test_text_envelope_and_body() -> None:
    body = body_of("text", stored({"type": "text", "text": "Hello!"}))
    assert body == {
        "messaging_product": "whatsapp",
        "recipient_type": "individual",
        "to": WA_ID,
        "type": "text",
        "text": {"body": "Hello!", "preview_url": False},
    }


def test_text_preview_url_comes_from_content() -> None:
    content = stored({"type": "text", "text": "See https://example.com", "previewUrl": True})
    assert body_of("text", content)["text"] == {"body": "See https://example.com", "preview_url": True}


def test_reply_context_and_callback_data() -> None:
    body = body_of(
        "text",
        stored({"type": "text", "text": "Sure"}),
        reply_to_wamid="wamid.HBgLQUOTED",
        callback_data="msg_0lq3x8k2m9",
    )
    assert body["context"] == {"message_id": "wamid.HBgLQUOTED"}
    assert body["biz_opaque_callback_data"] == "msg_0lq3x8k2m9"


def test_no_context_or_callback_data_unless_given() -> None:
    body = body_of("text", stored({"type": "text", "text": "Hi"}))
    assert "context" not in body
    assert "biz_opaque_callback_data" not in body


def test_unknown_type_is_refused() -> None:
    with pytest.raises(ValueError, match="sticker"):
        body_of("sticker", {"mediaId": OUR_MEDIA})


# --- media --------------------------------------------------------------------------------------------------


def test_image_by_our_id_uses_the_meta_id_and_caption() -> None:
    content = stored({"type": "image", "mediaId": OUR_MEDIA, "caption": "Your receipt"}, mimeType="image/jpeg")
    assert media_to_upload("image", content) == [OUR_MEDIA]
    body = body_of("image", content, media_ids={OUR_MEDIA: META_MEDIA})
    assert body["type"] == "image"
    assert body["image"] == {"id": META_MEDIA, "caption": "Your receipt"}


def test_document_by_link_keeps_caption_and_filename() -> None:
    content = stored(
        {"type": "document", "mediaUrl": "https://example.com/menu.pdf", "filename": "menu.pdf", "caption": "Menu"}
    )
    assert media_to_upload("document", content) == []
    assert body_of("document", content)["document"] == {
        "link": "https://example.com/menu.pdf",
        "caption": "Menu",
        "filename": "menu.pdf",
    }


def test_document_by_id_takes_the_filename_of_the_upload() -> None:
    content = stored({"type": "document", "mediaId": OUR_MEDIA}, mimeType="application/pdf", filename="invoice.pdf")
    body = body_of("document", content, media_ids={OUR_MEDIA: META_MEDIA})
    assert body["document"] == {"id": META_MEDIA, "filename": "invoice.pdf"}


def test_video_by_link_with_caption() -> None:
    content = stored({"type": "video", "mediaUrl": "https://example.com/how.mp4", "caption": "How to assemble"})
    assert body_of("video", content)["video"] == {"link": "https://example.com/how.mp4", "caption": "How to assemble"}


def test_audio_never_carries_a_caption() -> None:
    content = stored({"type": "audio", "mediaId": OUR_MEDIA}, mimeType="audio/mpeg")
    # Stored content from elsewhere (e.g. an edited row) must still not leak a caption onto audio.
    content["caption"] = "ignored"
    assert body_of("audio", content, media_ids={OUR_MEDIA: META_MEDIA})["audio"] == {"id": META_MEDIA}


def test_missing_media_mapping_is_a_clear_error() -> None:
    content = stored({"type": "image", "mediaId": OUR_MEDIA}, mimeType="image/png")
    with pytest.raises(ValueError, match=f"{OUR_MEDIA} has no Meta media id"):
        body_of("image", content, media_ids={})


# --- location, contacts, reaction ---------------------------------------------------------------------------


def test_location() -> None:
    place = {"latitude": 12.9716, "longitude": 77.5946, "name": "Cubbon Park", "address": "Bengaluru"}
    assert body_of("location", stored({"type": "location", **place}))["location"] == place


def test_location_without_address() -> None:
    content = stored({"type": "location", "latitude": -90, "longitude": 180, "name": "Pole"})
    assert body_of("location", content)["location"] == {"latitude": -90, "longitude": 180, "name": "Pole"}


def test_contact_becomes_meta_contacts_with_snake_case_keys() -> None:
    card = {
        "name": {"formattedName": "Ravi Kumar", "firstName": "Ravi", "lastName": "Kumar"},
        "phones": [{"phone": "+919811111111", "type": "CELL", "waId": "919811111111"}],
        "emails": [{"email": "ravi@example.com", "type": "WORK"}],
        "org": {"company": "Acme"},
        "addresses": [{"street": "1 MG Road", "countryCode": "IN"}],
    }
    body = body_of("contact", stored({"type": "contact", "contacts": [card]}))
    assert body["type"] == "contacts"
    assert "contact" not in body
    assert body["contacts"] == [
        {
            "name": {"formatted_name": "Ravi Kumar", "first_name": "Ravi", "last_name": "Kumar"},
            "phones": [{"phone": "+919811111111", "type": "CELL", "wa_id": "919811111111"}],
            "emails": [{"email": "ravi@example.com", "type": "WORK"}],
            "org": {"company": "Acme"},
            "addresses": [{"street": "1 MG Road", "country_code": "IN"}],
        }
    ]


def test_contact_already_in_snake_case_is_unchanged() -> None:
    card = {"name": {"formatted_name": "Asha", "first_name": "Asha"}, "phones": [{"phone": "+1 415", "wa_id": "1415"}]}
    assert body_of("contact", stored({"type": "contact", "contacts": [card]}))["contacts"] == [card]


def test_reaction_uses_the_targets_wamid() -> None:
    content = stored({"type": "reaction", "messageId": "msg_target", "emoji": "👍"}, whatsappMessageId="wamid.T")
    assert body_of("reaction", content)["reaction"] == {"message_id": "wamid.T", "emoji": "👍"}


def test_empty_emoji_removes_a_reaction() -> None:
    content = stored({"type": "reaction", "messageId": "msg_target", "emoji": ""}, whatsappMessageId="wamid.T")
    assert body_of("reaction", content)["reaction"] == {"message_id": "wamid.T", "emoji": ""}


def test_reaction_without_a_wamid_is_refused() -> None:
    content = stored({"type": "reaction", "messageId": "msg_target", "emoji": "👍"})
    with pytest.raises(ValueError, match="whatsappMessageId"):
        body_of("reaction", content)


# --- interactive --------------------------------------------------------------------------------------------

BUTTONS = {
    "type": "button",
    "body": {"text": "Shall we deliver tomorrow?"},
    "footer": {"text": "Kaanha"},
    "action": {
        "buttons": [
            {"type": "reply", "reply": {"id": "yes", "title": "Yes"}},
            {"type": "reply", "reply": {"id": "no", "title": "No"}},
        ]
    },
}
LIST = {
    "type": "list",
    "header": {"type": "text", "text": "Menu"},
    "body": {"text": "What would you like?"},
    "action": {
        "button": "View options",
        "sections": [{"title": "Coffee", "rows": [{"id": "esp", "title": "Espresso", "description": "Short"}]}],
    },
}
CTA_URL = {
    "type": "cta_url",
    "body": {"text": "Track your order"},
    "action": {"name": "cta_url", "parameters": {"display_text": "Track", "url": "https://example.com/track/1"}},
}


@pytest.mark.parametrize("interactive", [BUTTONS, LIST, CTA_URL], ids=["button", "list", "cta_url"])
def test_interactive_passes_through(interactive: dict[str, Any]) -> None:
    content = stored({"type": "interactive", "interactive": interactive})
    assert media_to_upload("interactive", content) == []
    body = body_of("interactive", content)
    assert body["type"] == "interactive"
    assert body["interactive"] == interactive


def test_interactive_header_with_our_media_uses_the_meta_id() -> None:
    interactive = {**BUTTONS, "header": {"type": "image", "image": {"id": OUR_MEDIA}}}
    content = stored({"type": "interactive", "interactive": interactive})
    before = copy.deepcopy(content)
    assert media_to_upload("interactive", content) == [OUR_MEDIA]
    body = body_of("interactive", content, media_ids={OUR_MEDIA: META_MEDIA})
    assert body["interactive"]["header"] == {"type": "image", "image": {"id": META_MEDIA}}
    assert body["interactive"]["action"] == BUTTONS["action"]
    assert content == before


def test_interactive_header_with_a_link_or_meta_id_is_left_alone() -> None:
    for header in (
        {"type": "document", "document": {"link": "https://example.com/a.pdf", "filename": "a.pdf"}},
        {"type": "video", "video": {"id": META_MEDIA}},
    ):
        content = stored({"type": "interactive", "interactive": {**CTA_URL, "header": header}})
        assert media_to_upload("interactive", content) == []
        assert body_of("interactive", content)["interactive"]["header"] == header


# --- template -----------------------------------------------------------------------------------------------


def test_template_without_parameters_has_no_components() -> None:
    content = stored(
        {"type": "template", "templateName": "hello_world", "language": "en_US", "components": []},
        category="UTILITY",
        preview="Hello World",
    )
    body = body_of("template", content)
    assert body["type"] == "template"
    assert body["template"] == {"name": "hello_world", "language": {"code": "en_US"}}


def test_template_components_are_normalised() -> None:
    components = [
        {"type": "BODY", "parameters": [{"type": "text", "text": "Asha"}, {"type": "TEXT", "text": "#7"}]},
        {"type": "button", "sub_type": "QUICK_REPLY", "index": 0, "parameters": [{"type": "payload", "payload": "A"}]},
        {"type": "button", "sub_type": "url", "index": "1", "parameters": [{"type": "text", "text": "track/7"}]},
        {"type": "header", "parameters": []},
    ]
    content = stored(
        {"type": "template", "templateName": "order_update", "language": "en_US", "components": components},
        category="UTILITY",
        preview="Hi Asha, your order #7 is on its way.",
    )
    template = body_of("template", content)["template"]
    assert template == {
        "name": "order_update",
        "language": {"code": "en_US"},
        "components": [
            {"type": "body", "parameters": [{"type": "text", "text": "Asha"}, {"type": "text", "text": "#7"}]},
            {
                "type": "button",
                "sub_type": "quick_reply",
                "index": "0",
                "parameters": [{"type": "payload", "payload": "A"}],
            },
            {"type": "button", "sub_type": "url", "index": "1", "parameters": [{"type": "text", "text": "track/7"}]},
        ],
    }
    assert "category" not in template
    assert "preview" not in template


def test_template_header_media_by_our_id_is_uploaded_and_swapped() -> None:
    components = [
        {"type": "header", "parameters": [{"type": "image", "image": {"id": OUR_MEDIA}}]},
        {"type": "body", "parameters": [{"type": "text", "text": "Asha"}]},
    ]
    content = stored({"type": "template", "templateName": "receipt", "language": "en", "components": components})
    before = copy.deepcopy(content)
    assert media_to_upload("template", content) == [OUR_MEDIA]
    template = body_of("template", content, media_ids={OUR_MEDIA: META_MEDIA})["template"]
    assert template["components"][0] == {
        "type": "header",
        "parameters": [{"type": "image", "image": {"id": META_MEDIA}}],
    }
    assert content == before


def test_template_header_media_by_link_needs_no_upload() -> None:
    header = {"type": "header", "parameters": [{"type": "document", "document": {"link": "https://e.com/a.pdf"}}]}
    content = stored({"type": "template", "templateName": "doc", "language": "en", "components": [header]})
    assert media_to_upload("template", content) == []
    assert body_of("template", content)["template"]["components"] == [header]


def test_template_header_media_without_mapping_is_a_clear_error() -> None:
    header = {"type": "header", "parameters": [{"type": "video", "video": {"id": OUR_MEDIA}}]}
    content = stored({"type": "template", "templateName": "promo", "language": "en", "components": [header]})
    with pytest.raises(ValueError, match="upload it first"):
        body_of("template", content)


# --- uploads, read receipts, no mutation --------------------------------------------------------------------


def test_nothing_to_upload_for_text_or_link_media() -> None:
    assert media_to_upload("text", stored({"type": "text", "text": "Hi"})) == []
    assert media_to_upload("image", stored({"type": "image", "mediaUrl": "https://e.com/a.jpg"})) == []


def test_mark_read_body() -> None:
    assert mark_read_body("wamid.IN") == {"messaging_product": "whatsapp", "status": "read", "message_id": "wamid.IN"}
    assert mark_read_body("wamid.IN", typing=True)["typing_indicator"] == {"type": "text"}


def test_content_is_never_mutated() -> None:
    cases: list[tuple[str, dict[str, Any]]] = [
        ("image", stored({"type": "image", "mediaId": OUR_MEDIA, "caption": "c"}, mimeType="image/png")),
        ("contact", stored({"type": "contact", "contacts": [{"name": {"formattedName": "Ravi"}}]})),
        ("interactive", stored({"type": "interactive", "interactive": LIST})),
        (
            "template",
            stored(
                {
                    "type": "template",
                    "templateName": "order_update",
                    "language": "en_US",
                    "components": [
                        {"type": "BODY", "parameters": [{"type": "currency", "currency": {"code": "INR"}}]},
                    ],
                },
                category="UTILITY",
                preview="Hi Asha",
            ),
        ),
    ]
    for message_type, content in cases:
        before = copy.deepcopy(content)
        body = body_of(message_type, content, media_ids={OUR_MEDIA: META_MEDIA})
        assert content == before, message_type
        # And the body shares nothing mutable with the stored content: emptying it leaves content intact.
        _empty(body)
        assert content == before, message_type


def _empty(value: Any) -> None:
    children = list(value.values()) if isinstance(value, dict) else list(value) if isinstance(value, list) else []
    for child in children:
        _empty(child)
    if isinstance(value, dict | list):
        value.clear()
