"""HTTP endpoints for media: upload under the API, download at /api/media/{mediaId}."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import APIRouter, Depends, File, UploadFile
from fastapi.responses import FileResponse, Response
from starlette.requests import Request
from starlette.responses import MalformedRangeHeader, RangeNotSatisfiable

from kaanha.auth.principal import Principal
from kaanha.errors import KaanhaError, NotFound
from kaanha.http.dependencies import RuntimeDep, SessionDep, require_scope
from kaanha.media import service
from kaanha.media.schemas import MediaOut

MediaReader = Annotated[Principal, Depends(require_scope("media:read"))]
MediaWriter = Annotated[Principal, Depends(require_scope("media:write"))]
upload_router = APIRouter(tags=["Media"])
download_router = APIRouter(tags=["Media"])

CHUNK = 256 * 1024


class RangeNotSatisfiableError(KaanhaError):
    status_code = 416
    code = "range_not_satisfiable"


async def _chunks(upload: UploadFile) -> AsyncIterator[bytes]:
    while chunk := await upload.read(CHUNK):
        yield chunk


@upload_router.post(
    "/media",
    summary="Upload media",
    status_code=201,
    response_model=MediaOut,
    description="Multipart field `file`, at most 16 MB: JPEG, PNG, WebP, PDF, DOCX, MP3, OGG or MP4, "
    "recognized from the bytes themselves. Returns a `mediaId` for sends.",
)
async def upload_media(
    principal: MediaWriter,
    session: SessionDep,
    runtime: RuntimeDep,
    file: Annotated[UploadFile, File(description="The file, at most 16 MB")],
) -> MediaOut:
    try:
        return await service.store_upload(
            session,
            organization_id=principal.organization_id,
            store=runtime.media_store,
            chunks=_chunks(file),
            filename=file.filename,
            max_bytes=runtime.settings.max_upload_bytes,
        )
    finally:
        await file.close()


@download_router.get(
    "/api/media/{media_id}",
    summary="Download or stream media",
    response_class=FileResponse,
    responses={200: {"content": {"application/octet-stream": {}}}, 206: {"description": "Partial content"}},
)
async def download_media(
    media_id: str,
    request: Request,
    principal: MediaReader,
    session: SessionDep,
    runtime: RuntimeDep,
) -> Response:
    media = await service.get_media(session, organization_id=principal.organization_id, media_id=media_id)
    path = runtime.media_store.path_for(media.sha256)
    if not path.is_file():
        raise NotFound(f"The bytes of media {media_id} are missing from the store")
    etag = f'"{media.sha256}"'
    if etag in [tag.strip() for tag in request.headers.get("if-none-match", "").split(",")]:
        return Response(status_code=304, headers={"ETag": etag})
    range_header = request.headers.get("range")
    if range_header:
        try:
            FileResponse._parse_range_header(range_header, media.size)
        except (MalformedRangeHeader, RangeNotSatisfiable):
            raise RangeNotSatisfiableError(
                f"Range '{range_header}' can't be served from a file of {media.size} bytes",
                headers={"Content-Range": f"bytes */{media.size}"},
            ) from None
    disposition = "attachment" if media.mime_type.startswith("application/") else "inline"
    return FileResponse(
        path,
        media_type=media.mime_type,
        filename=media.filename,
        content_disposition_type=disposition,
        headers={"ETag": etag, "Cache-Control": "private, max-age=31536000, immutable"},
    )
