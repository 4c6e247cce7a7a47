"""Page-number paging as API.md fixes it: `page` >= 1, `limit` 1..100, totals in every list."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Annotated, Generic, TypeVar

from fastapi import Query

from kaanha.kit.schemas import Schema

T = TypeVar("T")

MAX_LIMIT = 100
DEFAULT_LIMIT = 20


@dataclass(frozen=True)
class PageRequest:
    page: int = 1
    limit: int = DEFAULT_LIMIT

    @property
    def offset(self) -> int:
        return (self.page - 1) * self.limit


async def page_request(  # async: FastAPI would run a sync dependency in a thread
    page: Annotated[int, Query(ge=1, le=1_000_000, description="Page number, from 1")] = 1,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT, description="Results per page (1..100)")] = DEFAULT_LIMIT,
) -> PageRequest:
    return PageRequest(page=page, limit=limit)


class Pagination(Schema):
    page: int
    limit: int
    total: int
    total_pages: int


class Page(Schema, Generic[T]):
    data: list[T]
    pagination: Pagination

    @classmethod
    def of(cls, items: list[T], *, request: PageRequest, total: int) -> Page[T]:
        return cls(
            data=items,
            pagination=Pagination(
                page=request.page,
                limit=request.limit,
                total=total,
                total_pages=math.ceil(total / request.limit) if total else 0,
            ),
        )
