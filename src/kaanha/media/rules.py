"""What media we accept, how we recognize it, and WhatsApp's per-type limits on sending it."""

from __future__ import annotations

import zipfile
from io import BytesIO

import filetype

from kaanha.errors import InvalidRequest

MB = 1024 * 1024

# The reference's list: images (JPEG, PNG, WebP), documents (PDF, DOCX), audio (MP3, OGG), video (MP4).
DOCX = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
ACCEPTED_UPLOADS = {
    "image/jpeg": "JPEG image",
    "image/png": "PNG image",
    "image/webp": "WebP image",
    "application/pdf": "PDF document",
    DOCX: "Word document (DOCX)",
    "audio/mpeg": "MP3 audio",
    "audio/ogg": "OGG audio",
    "video/mp4": "MP4 video",
}

# WhatsApp's own rules per message type (Meta's supported-media table): MIME types and size limits.
SEND_RULES: dict[str, tuple[frozenset[str], int]] = {
    "image": (frozenset({"image/jpeg", "image/png"}), 5 * MB),
    "audio": (frozenset({"audio/mpeg", "audio/ogg", "audio/aac", "audio/mp4", "audio/amr"}), 16 * MB),
    "video": (frozenset({"video/mp4", "video/3gpp"}), 16 * MB),
    "document": (frozenset({"application/pdf", DOCX, "text/plain", "application/msword"}), 100 * MB),
}


class MediaNotSendable(InvalidRequest):
    code = "media_not_sendable"


def sniff_mime_type(head: bytes) -> str | None:
    """The MIME type the bytes really are, whatever the client claimed."""
    kind = filetype.guess(head)
    mime = kind.mime if kind else None
    if mime == "application/zip" or mime == DOCX:
        return DOCX if _looks_like_docx(head) or mime == DOCX else None
    if mime == "audio/mp4" or mime == "video/x-m4v":
        return "video/mp4"
    return mime


_ZIP_LOCAL_HEADER = b"PK\x03\x04"


def _looks_like_docx(head: bytes) -> bool:
    # A DOCX is a ZIP whose first entries name word/ parts; the local headers are in the first bytes.
    # Only entry names count: "password/notes.txt" in a plain ZIP is not a Word document.
    offset = head.find(_ZIP_LOCAL_HEADER)
    while offset != -1 and offset + 30 <= len(head):
        name_length = int.from_bytes(head[offset + 26 : offset + 28], "little")
        if head[offset + 30 : offset + 30 + name_length].startswith(b"word/"):
            return True
        offset = head.find(_ZIP_LOCAL_HEADER, offset + 4)
    try:
        with zipfile.ZipFile(BytesIO(head)) as archive:
            return any(name.startswith("word/") for name in archive.namelist())
    except (zipfile.BadZipFile, OSError):
        return False


def check_sendable(message_type: str, *, mime_type: str, size: int) -> None:
    """Refuse media that WhatsApp would refuse for this message type, naming the rule."""
    allowed, limit = SEND_RULES[message_type]
    if mime_type not in allowed:
        kinds = ", ".join(sorted(allowed))
        raise MediaNotSendable(
            f"A {message_type} message can't carry {mime_type}; WhatsApp accepts {kinds} for {message_type}"
        )
    if size > limit:
        raise MediaNotSendable(
            f"This {message_type} is {size / MB:.2f} MB ({size} bytes); "
            f"WhatsApp's limit for {message_type} is {limit // MB} MB"
        )
