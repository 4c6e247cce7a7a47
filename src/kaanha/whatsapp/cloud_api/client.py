"""A small client for the parts of Meta's Graph API that WhatsApp uses, over one shared httpx client.

Every failure comes back as one of two exceptions: `GraphError` when Meta answered with an error
body (decide on its `code`, never on the HTTP status), `GraphUnreachable` when no answer came, with
whether the request may still have reached Meta (what makes a resend unsafe).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import orjson

# Where Meta serves media from (lookaside.fbsbx.com today); our token is sent nowhere else.
META_MEDIA_HOSTS = (".fbsbx.com", ".facebook.com", ".fbcdn.net", ".whatsapp.net")

# Raised before a byte of the request left: safe to send again.
_NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout, httpx.UnsupportedProtocol)


class GraphError(Exception):
    """Meta answered with an error body."""

    def __init__(
        self,
        *,
        code: int,
        message: str,
        details: str | None = None,
        http_status: int,
        subcode: int | None = None,
        user_message: str | None = None,
    ) -> None:
        super().__init__(f"({code}) {message}")
        self.code = code
        self.message = message
        self.details = details
        self.http_status = http_status
        self.subcode = subcode
        # Meta's `error_user_msg`: written for the business (template refusals say what to change).
        self.user_message = user_message

    @classmethod
    def from_response(cls, response: httpx.Response) -> GraphError:
        try:
            body = orjson.loads(response.content)
            error = body["error"] if isinstance(body, dict) and isinstance(body.get("error"), dict) else {}
        except orjson.JSONDecodeError:
            error = {}
        code = error.get("code")
        details = (error.get("error_data") or {}).get("details") if isinstance(error.get("error_data"), dict) else None
        return cls(
            code=code if isinstance(code, int) else response.status_code,
            message=str(error.get("message") or f"HTTP {response.status_code} from the Graph API"),
            details=str(details) if details else None,
            http_status=response.status_code,
            subcode=error.get("error_subcode") if isinstance(error.get("error_subcode"), int) else None,
            user_message=str(error["error_user_msg"]) if error.get("error_user_msg") else None,
        )

    @property
    def readable(self) -> str:
        """What Meta says went wrong, in the most helpful words it gave."""
        return self.user_message or self.details or self.message


class GraphUnreachable(Exception):
    """No answer from Meta: `may_have_arrived` is False only when the request certainly never left."""

    def __init__(self, reason: str, *, may_have_arrived: bool) -> None:
        super().__init__(reason)
        self.may_have_arrived = may_have_arrived


def _describe(error: httpx.HTTPError) -> str:
    """The kind of failure only: httpx's own text can quote request headers, and so our token."""
    return f"{type(error).__name__} talking to the Graph API"


class GraphClient:
    def __init__(self, http: httpx.AsyncClient, *, base_url: str, version: str, access_token: str) -> None:
        self._http = http
        self._root = f"{base_url.rstrip('/')}/{version.strip('/')}"
        self._headers = {"Authorization": f"Bearer {access_token}"}

    async def _call(
        self, method: str, path: str, *, headers: dict[str, str] | None = None, **options: Any
    ) -> dict[str, Any]:
        try:
            response = await self._http.request(
                method, f"{self._root}/{path.lstrip('/')}", headers={**self._headers, **(headers or {})}, **options
            )
        except _NOT_SENT as error:
            raise GraphUnreachable(_describe(error), may_have_arrived=False) from error
        except httpx.HTTPError as error:
            # A timeout or broken connection after the request was written: Meta may have acted on it.
            raise GraphUnreachable(_describe(error), may_have_arrived=True) from error
        if response.status_code >= 400:
            raise GraphError.from_response(response)
        try:
            body = orjson.loads(response.content)
        except orjson.JSONDecodeError as error:
            raise GraphUnreachable(
                "the Graph API answered with something that is not JSON", may_have_arrived=True
            ) from error
        return body if isinstance(body, dict) else {}

    async def phone_number(self, phone_number_id: str) -> dict[str, Any]:
        """The number's display phone number and verified business name (checks the token too)."""
        return await self._call(
            "GET", phone_number_id, params={"fields": "display_phone_number,verified_name,quality_rating"}
        )

    async def send(self, phone_number_id: str, body: dict[str, Any]) -> dict[str, Any]:
        return await self._call(
            "POST",
            f"{phone_number_id}/messages",
            content=orjson.dumps(body),
            headers={"Content-Type": "application/json"},
        )

    async def upload_media(self, phone_number_id: str, *, data: bytes, mime_type: str, filename: str) -> str:
        body = await self._call(
            "POST",
            f"{phone_number_id}/media",
            data={"messaging_product": "whatsapp", "type": mime_type},
            files={"file": (filename, data, mime_type)},
        )
        return str(body["id"])

    async def media_info(self, media_id: str) -> dict[str, Any]:
        """Where to download an inbound media file (a URL valid for 5 minutes), its type, size and hash."""
        return await self._call("GET", media_id)

    async def download(self, url: str) -> AsyncIterator[bytes]:
        """The bytes behind a media URL from `media_info`; it needs the token and may redirect.

        The token goes only to Meta's hosts (or the configured Graph host, e.g. the fake); httpx drops
        it on a redirect to another origin.
        """
        if not self.may_receive_token(url):
            raise GraphError(code=0, message=f"media URL on an unexpected host: {url[:200]}", http_status=400)
        try:
            async with self._http.stream("GET", url, headers=self._headers, follow_redirects=True) as response:
                if response.status_code >= 400:
                    await response.aread()
                    raise GraphError.from_response(response)
                async for chunk in response.aiter_bytes():
                    yield chunk
        except httpx.HTTPError as error:
            raise GraphUnreachable(_describe(error), may_have_arrived=True) from error

    def may_receive_token(self, url: str) -> bool:
        target, graph = httpx.URL(url), httpx.URL(self._root)
        if (target.scheme, target.host, target.port) == (graph.scheme, graph.host, graph.port):
            return True
        return target.scheme == "https" and target.port in (None, 443) and target.host.endswith(META_MEDIA_HOSTS)

    async def templates(
        self, waba_id: str, *, after: str | None = None, limit: int = 100, fields: str | None = None
    ) -> dict[str, Any]:
        """One page of the WABA's templates; `paging.next` is there while more pages follow."""
        params: dict[str, Any] = {"limit": limit}
        if after:
            params["after"] = after
        if fields:
            params["fields"] = fields
        return await self._call("GET", f"{waba_id}/message_templates", params=params)

    async def create_template(self, waba_id: str, body: dict[str, Any]) -> dict[str, Any]:
        """Submit a template for review: `{"id", "status", "category"}` (Meta may change the category)."""
        return await self._call(
            "POST",
            f"{waba_id}/message_templates",
            content=orjson.dumps(body),
            headers={"Content-Type": "application/json"},
        )

    async def delete_template(self, waba_id: str, *, name: str, template_id: str | None = None) -> None:
        """Delete a template; with `template_id` (Meta's `hsm_id`) only that language, else every language."""
        params = {"name": name}
        if template_id:
            params["hsm_id"] = template_id
        await self._call("DELETE", f"{waba_id}/message_templates", params=params)


def new_http_client(*, timeout: float, connect_timeout: float) -> httpx.AsyncClient:
    """One pooled client per process: connections to Meta are reused across sends."""
    return httpx.AsyncClient(
        timeout=httpx.Timeout(timeout, connect=connect_timeout),
        limits=httpx.Limits(max_connections=200, max_keepalive_connections=100),
        headers={"User-Agent": "kaanha"},
    )
