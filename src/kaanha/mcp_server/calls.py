"""How a tool runs: its key authenticated and scope checked, one committed transaction, errors as tool errors."""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from mcp.server.mcpserver import Context
from mcp.server.mcpserver.exceptions import ToolError
from mcp.server.mcpserver.utilities.func_metadata import ArgModelBase
from pydantic import BaseModel
from sqlalchemy.ext.asyncio import AsyncSession

from kaanha.auth.api_keys import authenticate
from kaanha.auth.principal import Principal
from kaanha.errors import KaanhaError
from kaanha.runtime import Runtime

T = TypeVar("T")
M = TypeVar("M", bound=BaseModel)
logger = logging.getLogger("kaanha.mcp")


def tool_error(error: KaanhaError) -> ToolError:
    """The REST API's error body, word for word, as the tool's error text."""
    return ToolError(json.dumps({"error": error.message, "code": error.code}))


class ToolRunner:
    """Runs tool bodies for one MCP server: over HTTP the key is the request's, over stdio the process's."""

    def __init__(self, runtime: Runtime, *, api_key: str | None = None) -> None:
        self.runtime = runtime
        self.api_key = api_key

    def authorization(self, ctx: Context) -> str | None:
        headers = ctx.headers
        if headers is not None:
            return headers.get("authorization")
        return f"Bearer {self.api_key}" if self.api_key else None

    async def run(self, ctx: Context, scope: str, action: Callable[[AsyncSession, Principal], Awaitable[T]]) -> T:
        """`action` in one transaction, committed before the tool answers (as the REST request's session is).

        The key is checked on every call, so a key revoked while a session is open stops working at once.
        """
        try:
            async with self.runtime.database.sessions() as session:
                try:
                    principal = await authenticate(session, self.authorization(ctx))
                    principal.require(scope)
                    # Authenticating may have written (the key's last use): commit it now, so that no lock
                    # is held while a tool waits on the network (upload_media's download).
                    await session.commit()
                    result = await action(session, principal)
                    await session.commit()
                except BaseException:
                    await session.rollback()
                    raise
        except KaanhaError as error:
            raise tool_error(error) from None
        return result


def flattened(model: type[M], parameter: str) -> type[ArgModelBase]:
    """A tool arguments model whose fields are `model`'s, handed to the tool as one `parameter`.

    Models then call `send_message(to=..., type=..., text=...)` rather than nesting the body, with
    the same validation (and the same fields set, for partial updates) as the REST endpoint's body.
    """

    class Arguments(model, ArgModelBase):  # type: ignore[valid-type,misc]
        def model_dump_one_level(self) -> dict[str, Any]:
            return {parameter: self}

    Arguments.__name__ = f"{model.__name__}Arguments"
    return Arguments
