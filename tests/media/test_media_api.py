"""Media over HTTP: uploads recognized from their bytes, limited to 16 MB, stored once; downloads with
ETag, Range and conditional requests; and WhatsApp's per-type rules when media is sent."""

from __future__ import annotations

import hashlib
import io
import struct
import zipfile
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import func, select

from kaanha.models import Media
from tests.conftest import API

MiB = 1024 * 1024
DOCX = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
CUSTOMER = "+919876543210"


def jpeg_bytes() -> bytes:
    # SOI, a JFIF APP0 segment, a little filler and EOI.
    app0 = b"JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00"
    return b"\xff\xd8\xff\xe0" + struct.pack(">H", len(app0) + 2) + app0 + bytes(range(64)) + b"\xff\xd9"


def png_bytes(padding: int = 0) -> bytes:
    ihdr = struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + struct.pack(">I", len(ihdr)) + b"IHDR" + ihdr + b"\x00" * (4 + padding)


def webp_bytes() -> bytes:
    chunk = b"VP8 " + struct.pack("<I", 10) + b"\x00" * 10
    return b"RIFF" + struct.pack("<I", 4 + len(chunk)) + b"WEBP" + chunk


def pdf_bytes() -> bytes:
    return b"%PDF-1.4\n1 0 obj\n<< /Type /Catalog >>\nendobj\ntrailer\n<< /Root 1 0 R >>\n%%EOF\n"


def zip_bytes(*names: str) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name in names:
            archive.writestr(name, f'<?xml version="1.0"?><part name="{name}"/>')
    return buffer.getvalue()


def docx_bytes() -> bytes:
    return zip_bytes("[Content_Types].xml", "word/document.xml")


def docx_word_parts_later() -> bytes:
    # Some writers put several package parts before the first word/ part.
    return zip_bytes(
        "_rels/.rels",
        "docProps/app.xml",
        "docProps/core.xml",
        "docProps/custom.xml",
        "customXml/item1.xml",
        "word/document.xml",
        "[Content_Types].xml",
    )


def mp3_bytes() -> bytes:
    # An ID3v2.3 tag header (no frames) followed by one MPEG-1 Layer III frame header.
    return b"ID3\x03\x00\x00\x00\x00\x00\x00" + b"\xff\xfb\x90\x64" + b"\x00" * 413


def mp3_frame_bytes() -> bytes:
    # No ID3 tag: the bytes start directly with an MPEG-1 Layer III frame header.
    return b"\xff\xfb\x90\x64" + b"\x00" * 413


def ogg_bytes() -> bytes:
    page_header = b"OggS\x00\x02" + b"\x00" * 8 + b"\x01\x00\x00\x00" + b"\x00" * 8 + b"\x01\x1e"
    return page_header + b"\x01vorbis" + b"\x00" * 23


def mp4_bytes() -> bytes:
    ftyp = b"ftyp" + b"isom" + struct.pack(">I", 512) + b"isomiso2avc1mp41"
    return struct.pack(">I", len(ftyp) + 4) + ftyp + struct.pack(">I", 8) + b"free"


ACCEPTED = [
    pytest.param(jpeg_bytes(), "photo.jpg", "image/jpeg", id="jpeg"),
    pytest.param(png_bytes(), "logo.png", "image/png", id="png"),
    pytest.param(webp_bytes(), "sticker.webp", "image/webp", id="webp"),
    pytest.param(pdf_bytes(), "invoice.pdf", "application/pdf", id="pdf"),
    pytest.param(docx_bytes(), "letter.docx", DOCX, id="docx"),
    pytest.param(docx_word_parts_later(), "letter.docx", DOCX, id="docx-word-parts-later"),
    pytest.param(mp3_bytes(), "song.mp3", "audio/mpeg", id="mp3-id3"),
    pytest.param(mp3_frame_bytes(), "song.mp3", "audio/mpeg", id="mp3-frame"),
    pytest.param(ogg_bytes(), "voice.ogg", "audio/ogg", id="ogg"),
    pytest.param(mp4_bytes(), "clip.mp4", "video/mp4", id="mp4"),
]


def stored_files(root: Path) -> set[Path]:
    return {path for path in root.rglob("*") if path.is_file()} if root.exists() else set()


async def media_rows(runtime) -> int:  # type: ignore[no-untyped-def]
    async with runtime.database.sessions() as session:
        return int(await session.scalar(select(func.count()).select_from(Media)) or 0)


async def upload(client, tenant, data: bytes, filename: str = "file.bin", content_type: str = "image/png"):  # type: ignore[no-untyped-def]
    return await client.post(f"{API}/media", headers=tenant.headers, files={"file": (filename, data, content_type)})


# --- Uploads ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(("data", "filename", "mime_type"), ACCEPTED)
async def test_each_accepted_type_is_stored_and_described(client, tenant, data, filename, mime_type):
    # The client claims nothing useful: the type must come from the bytes.
    r = await upload(client, tenant, data, filename, "application/octet-stream")

    assert r.status_code == 201, r.text
    body = r.json()
    assert body["mimeType"] == mime_type
    assert body["size"] == len(data)
    assert body["filename"] == filename
    assert body["sha256"] == hashlib.sha256(data).hexdigest()
    assert isinstance(body["mediaId"], str)
    assert body["mediaId"]


async def test_type_comes_from_bytes_not_from_name_or_claimed_type(client, tenant):
    data = png_bytes()

    r = await upload(client, tenant, data, "x.pdf", "application/pdf")

    assert r.status_code == 201, r.text
    assert r.json()["mimeType"] == "image/png"
    download = await client.get(f"/api/media/{r.json()['mediaId']}", headers=tenant.headers)
    assert download.headers["content-type"] == "image/png"


@pytest.mark.parametrize(
    ("data", "filename", "content_type"),
    [
        pytest.param(b"just some text, not a picture\n" * 20, "picture.png", "image/png", id="text-as-png"),
        pytest.param(b"<html><script>alert(1)</script></html>", "page.pdf", "application/pdf", id="html-as-pdf"),
        pytest.param(b"GIF89a\x01\x00\x01\x00\x00\x00\x00;", "anim.gif", "image/gif", id="gif"),
    ],
)
async def test_unsupported_bytes_are_refused_and_nothing_is_kept(
    client, tenant, runtime, settings, data, filename, content_type
):
    kept = await upload(client, tenant, png_bytes(), "kept.png", "image/png")  # someone else's blob, untouched
    assert kept.status_code == 201, kept.text
    files_before = stored_files(settings.media_dir)
    rows_before = await media_rows(runtime)

    r = await upload(client, tenant, data, filename, content_type)

    assert r.status_code == 415, r.text
    assert r.json()["code"] == "unsupported_media_type"
    assert r.json()["error"]
    assert await media_rows(runtime) == rows_before
    assert stored_files(settings.media_dir) == files_before


@pytest.mark.parametrize(
    "names",
    [
        pytest.param(("notes.txt",), id="plain-zip"),
        pytest.param(("password/notes.txt",), id="folder-ending-in-word"),
        pytest.param(("backup/word/document.xml",), id="word-folder-not-at-the-root"),
        pytest.param(("[Content_Types].xml", "xl/workbook.xml"), id="xlsx"),
    ],
)
async def test_a_zip_that_is_not_a_word_document_is_refused(client, tenant, names):
    r = await upload(client, tenant, zip_bytes(*names), "letter.docx", DOCX)

    assert r.status_code == 415, r.text
    assert r.json()["code"] == "unsupported_media_type"


async def test_a_file_of_16_mib_plus_one_byte_is_refused_with_413(client, tenant, runtime, settings):
    files_before = stored_files(settings.media_dir)
    data = png_bytes(padding=16 * MiB + 1 - len(png_bytes()))
    assert len(data) == 16 * MiB + 1

    r = await upload(client, tenant, data, "huge.png", "image/png")

    assert r.status_code == 413, r.text
    assert r.json()["code"] in {"media_too_large", "payload_too_large"}
    assert "16 MB" in r.json()["error"]
    assert await media_rows(runtime) == 0
    assert stored_files(settings.media_dir) == files_before


async def test_a_file_of_exactly_16_mib_is_accepted(client, tenant):
    data = png_bytes(padding=16 * MiB - len(png_bytes()))

    r = await upload(client, tenant, data, "big.png", "image/png")

    assert r.status_code == 201, r.text
    assert r.json()["size"] == 16 * MiB


async def test_a_declared_content_length_over_the_limit_is_answered_before_the_body_is_read(client, tenant):
    sent: list[int] = []

    async def body() -> AsyncIterator[bytes]:
        for _ in range(40):
            sent.append(1)
            yield b"\x00" * MiB

    r = await client.post(
        f"{API}/media",
        headers={
            **tenant.headers,
            "Content-Type": "multipart/form-data; boundary=xyz",
            "Content-Length": str(40 * MiB),
        },
        content=body(),
    )

    assert r.status_code == 413, r.text
    assert r.headers["content-type"].startswith("application/json")
    assert r.json()["code"] == "payload_too_large"
    assert r.json()["error"]
    assert sent == []  # refused from the header alone


async def test_the_same_bytes_uploaded_twice_are_stored_once_with_two_media_ids(client, tenant, settings):
    data = jpeg_bytes()

    first = await upload(client, tenant, data, "a.jpg")
    second = await upload(client, tenant, data, "b.jpg")

    assert first.status_code == second.status_code == 201
    assert first.json()["mediaId"] != second.json()["mediaId"]
    assert first.json()["sha256"] == second.json()["sha256"]
    blobs = stored_files(settings.media_dir)
    assert len(blobs) == 1, blobs
    (blob,) = blobs
    assert blob.read_bytes() == data
    for media_id, filename in ((first.json()["mediaId"], "a.jpg"), (second.json()["mediaId"], "b.jpg")):
        r = await client.get(f"/api/media/{media_id}", headers=tenant.headers)
        assert r.status_code == 200
        assert r.content == data
        assert filename in r.headers.get("content-disposition", "")


async def test_an_upload_without_the_file_field_is_400(client, tenant):
    r = await client.post(
        f"{API}/media", headers=tenant.headers, files={"document": ("a.png", png_bytes(), "image/png")}
    )

    assert r.status_code == 400, r.text
    assert r.json()["code"] == "validation_error"
    assert "file" in r.json()["error"]


async def test_an_upload_with_no_body_is_400(client, tenant):
    r = await client.post(f"{API}/media", headers=tenant.headers)

    assert r.status_code == 400, r.text
    assert set(r.json()) >= {"error", "code"}


async def test_uploading_needs_an_api_key(client, runtime):
    r = await client.post(f"{API}/media", files={"file": ("a.png", png_bytes(), "image/png")})

    assert r.status_code == 401
    assert r.json()["code"] == "unauthorized"
    assert await media_rows(runtime) == 0


# --- Downloads -------------------------------------------------------------------------------------


@pytest.fixture
async def stored_pdf(client, tenant) -> tuple[str, bytes]:
    data = pdf_bytes() + b"%" + bytes(range(256)) * 4
    r = await upload(client, tenant, data, "invoice.pdf", "application/pdf")
    assert r.status_code == 201, r.text
    return r.json()["mediaId"], data


async def test_download_returns_the_bytes_with_type_etag_and_length(client, tenant, stored_pdf):
    media_id, data = stored_pdf

    r = await client.get(f"/api/media/{media_id}", headers=tenant.headers)

    assert r.status_code == 200
    assert r.content == data
    assert r.headers["content-type"] == "application/pdf"
    assert r.headers["etag"] == f'"{hashlib.sha256(data).hexdigest()}"'
    assert r.headers["content-length"] == str(len(data))
    assert "invoice.pdf" in r.headers["content-disposition"]


async def test_a_range_request_returns_206_and_just_those_bytes(client, tenant, stored_pdf):
    media_id, data = stored_pdf

    r = await client.get(f"/api/media/{media_id}", headers={**tenant.headers, "Range": "bytes=0-9"})

    assert r.status_code == 206
    assert r.content == data[:10]
    assert r.headers["content-range"] == f"bytes 0-9/{len(data)}"
    assert r.headers["content-length"] == "10"


async def test_an_open_ended_range_returns_the_tail(client, tenant, stored_pdf):
    media_id, data = stored_pdf

    r = await client.get(f"/api/media/{media_id}", headers={**tenant.headers, "Range": "bytes=100-"})

    assert r.status_code == 206
    assert r.content == data[100:]
    assert r.headers["content-range"] == f"bytes 100-{len(data) - 1}/{len(data)}"


@pytest.mark.parametrize("range_header", ["bytes=999999-", "bytes=5000000-5000010"])
async def test_an_unsatisfiable_range_is_416_json(client, tenant, stored_pdf, range_header):
    media_id, data = stored_pdf

    r = await client.get(f"/api/media/{media_id}", headers={**tenant.headers, "Range": range_header})

    assert r.status_code == 416
    assert r.headers["content-type"].startswith("application/json")
    assert r.json()["code"] == "range_not_satisfiable"
    assert r.json()["error"]
    assert r.headers["content-range"] == f"bytes */{len(data)}"


async def test_if_none_match_with_the_etag_is_304_without_a_body(client, tenant, stored_pdf):
    media_id, _data = stored_pdf
    etag = (await client.get(f"/api/media/{media_id}", headers=tenant.headers)).headers["etag"]

    r = await client.get(f"/api/media/{media_id}", headers={**tenant.headers, "If-None-Match": etag})

    assert r.status_code == 304
    assert r.content == b""
    assert r.headers["etag"] == etag


async def test_if_none_match_with_another_etag_returns_the_bytes(client, tenant, stored_pdf):
    media_id, data = stored_pdf

    r = await client.get(f"/api/media/{media_id}", headers={**tenant.headers, "If-None-Match": '"something-else"'})

    assert r.status_code == 200
    assert r.content == data


async def test_another_organizations_media_is_not_found(client, tenant, other_tenant, stored_pdf):
    media_id, _data = stored_pdf

    r = await client.get(f"/api/media/{media_id}", headers=other_tenant.headers)

    assert r.status_code == 404
    assert r.json()["code"] in {"media_not_found", "not_found"}
    assert b"%PDF" not in r.content


async def test_an_unknown_media_id_is_not_found(client, tenant):
    r = await client.get("/api/media/med_doesnotexist", headers=tenant.headers)

    assert r.status_code == 404
    assert set(r.json()) >= {"error", "code"}


async def test_download_needs_an_api_key(client, stored_pdf):
    media_id, _data = stored_pdf

    r = await client.get(f"/api/media/{media_id}")

    assert r.status_code == 401
    assert r.json()["code"] == "unauthorized"
    assert b"%PDF" not in r.content


# --- Sending media: WhatsApp's per-type rules ------------------------------------------------------


@pytest.fixture
async def open_window(client, tenant) -> None:
    r = await client.post(f"{API}/sandbox/inbound", headers=tenant.headers, json={"from": CUSTOMER, "text": "hi"})
    assert r.status_code == 201, r.text


async def test_an_image_over_5_mb_cannot_be_sent_as_an_image(client, tenant, open_window):
    data = png_bytes(padding=5 * MiB + 4096)
    uploaded = await upload(client, tenant, data, "poster.png", "image/png")
    assert uploaded.status_code == 201, uploaded.text
    assert uploaded.json()["mimeType"] == "image/png"

    r = await client.post(
        f"{API}/send",
        headers=tenant.headers,
        json={"to": CUSTOMER, "type": "image", "mediaId": uploaded.json()["mediaId"]},
    )

    assert r.status_code == 400, r.text
    assert "5 MB" in r.json()["error"]
    assert r.json()["code"]
    messages = await client.get(f"{API}/messages", headers=tenant.headers)
    assert [m["direction"] for m in messages.json()["data"]] == ["inbound"]  # nothing was queued


async def test_a_webp_cannot_be_sent_as_an_image(client, tenant, open_window):
    uploaded = await upload(client, tenant, webp_bytes(), "sticker.webp", "image/webp")
    assert uploaded.status_code == 201, uploaded.text

    r = await client.post(
        f"{API}/send",
        headers=tenant.headers,
        json={"to": CUSTOMER, "type": "image", "mediaId": uploaded.json()["mediaId"]},
    )

    assert r.status_code == 400, r.text
    assert "image/webp" in r.json()["error"]


async def test_a_small_png_can_be_sent_as_an_image(client, tenant, open_window):
    uploaded = await upload(client, tenant, png_bytes(), "logo.png", "image/png")

    r = await client.post(
        f"{API}/send",
        headers=tenant.headers,
        json={"to": CUSTOMER, "type": "image", "mediaId": uploaded.json()["mediaId"], "caption": "Our logo"},
    )

    assert r.status_code == 201, r.text
    assert r.json()["type"] == "image"
    assert r.json()["content"]["mediaId"] == uploaded.json()["mediaId"]


async def test_another_organizations_media_cannot_be_sent(client, tenant, other_tenant, open_window):
    theirs = await upload(client, other_tenant, png_bytes(), "theirs.png", "image/png")

    r = await client.post(
        f"{API}/send",
        headers=tenant.headers,
        json={"to": CUSTOMER, "type": "image", "mediaId": theirs.json()["mediaId"]},
    )

    assert r.status_code == 404, r.text
