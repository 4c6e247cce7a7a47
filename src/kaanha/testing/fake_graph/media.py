"""Media the Cloud API accepts: MIME types and sizes by kind (cloud-api.md §3, AWS's copy of Meta's table)."""

from __future__ import annotations

from kaanha.testing.fake_graph.errors import GraphError, invalid

MB = 1024 * 1024
KB = 1024

KIND_BY_MIME: dict[str, str] = {
    "audio/aac": "audio",
    "audio/amr": "audio",
    "audio/mpeg": "audio",
    "audio/mp4": "audio",
    "audio/ogg": "audio",
    "text/plain": "document",
    "application/pdf": "document",
    "application/msword": "document",
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document": "document",
    "application/vnd.ms-excel": "document",
    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet": "document",
    "application/vnd.ms-powerpoint": "document",
    "application/vnd.openxmlformats-officedocument.presentationml.presentation": "document",
    "image/jpeg": "image",
    "image/png": "image",
    "image/webp": "sticker",
    "video/mp4": "video",
    "video/3gpp": "video",
}

MAX_BYTES: dict[str, int] = {"audio": 16 * MB, "document": 100 * MB, "image": 5 * MB, "video": 16 * MB}
STATIC_STICKER_MAX = 100 * KB
ANIMATED_STICKER_MAX = 500 * KB


def base_mime(mime_type: str) -> str:
    """`audio/ogg; codecs=opus` → `audio/ogg`: the parameters do not change the kind."""
    return mime_type.split(";", 1)[0].strip().lower()


def check_upload(mime_type: str, data: bytes) -> str:
    """The media kind of an upload; refuses unknown types (100) and oversized files (131053) as Meta does."""
    kind = KIND_BY_MIME.get(base_mime(mime_type))
    if kind is None:
        raise invalid(
            f"Param file must be a file with one of the following types: {', '.join(KIND_BY_MIME)}. "
            f"Received file of type '{mime_type}'."
        )
    limit = _limit(kind, data)
    if len(data) > limit:
        raise GraphError(
            131053, f"File size {len(data)} bytes exceeds the {limit} bytes allowed for {base_mime(mime_type)}."
        )
    if not data:
        raise GraphError(131053, "The uploaded file is empty.")
    return kind


def _limit(kind: str, data: bytes) -> int:
    if kind != "sticker":
        return MAX_BYTES[kind]
    # An animated WebP carries an ANIM chunk right after its VP8X header.
    return ANIMATED_STICKER_MAX if b"ANIM" in data[:64] else STATIC_STICKER_MAX
