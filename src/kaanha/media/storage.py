"""Content-addressed media bytes on local disk: one file per sha256, whoever uploads it and how often."""

from __future__ import annotations

import asyncio
import hashlib
import os
import tempfile
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class StoredBlob:
    sha256: str
    size: int


class BlobTooLarge(Exception):
    def __init__(self, limit: int) -> None:
        super().__init__(f"larger than {limit} bytes")
        self.limit = limit


SNIFF_BYTES = 8192


class MediaStore:
    def __init__(self, root: Path) -> None:
        self.root = root

    def path_for(self, sha256: str) -> Path:
        return self.root / sha256[:2] / sha256[2:4] / sha256

    async def save(
        self,
        chunks: AsyncIterator[bytes],
        *,
        max_bytes: int,
        inspect: Callable[[bytes], None] | None = None,
    ) -> StoredBlob:
        """Stream `chunks` to disk while hashing them; stop with BlobTooLarge past `max_bytes`.

        `inspect` sees the first bytes before the blob is kept; whatever it raises discards the blob.

        Bytes go to a temporary file first and are renamed into place, so a crash never leaves
        a half-written blob under a real hash, and a second copy of known content costs nothing.
        """
        self.root.mkdir(parents=True, exist_ok=True)
        digest = hashlib.sha256()
        size = 0
        head = b""
        handle, temp_name = tempfile.mkstemp(dir=self.root, prefix=".upload-")
        try:
            with os.fdopen(handle, "wb") as temp:
                async for chunk in chunks:
                    size += len(chunk)
                    if size > max_bytes:
                        raise BlobTooLarge(max_bytes)
                    if len(head) < SNIFF_BYTES:
                        head += chunk[: SNIFF_BYTES - len(head)]
                    digest.update(chunk)
                    await asyncio.to_thread(temp.write, chunk)
            if inspect is not None:
                inspect(head)
            sha256 = digest.hexdigest()
            target = self.path_for(sha256)
            if target.exists():
                os.unlink(temp_name)
            else:
                target.parent.mkdir(parents=True, exist_ok=True)
                os.replace(temp_name, target)
            return StoredBlob(sha256=sha256, size=size)
        except BaseException:
            Path(temp_name).unlink(missing_ok=True)
            raise
