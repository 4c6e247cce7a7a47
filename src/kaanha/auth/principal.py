"""The caller of a request: which organization it acts for and what it may do."""

from __future__ import annotations

from dataclasses import dataclass

from kaanha.errors import Forbidden


class MissingScope(Forbidden):
    code = "insufficient_scope"


@dataclass(frozen=True)
class Principal:
    organization_id: str
    scopes: frozenset[str]
    api_key_id: str | None = None
    user_id: str | None = None

    def require(self, scope: str) -> None:
        if scope not in self.scopes:
            raise MissingScope(f"This API key lacks the '{scope}' scope; create a key that has it")
