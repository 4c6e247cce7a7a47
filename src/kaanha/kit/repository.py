"""The tenancy chokepoint: every query on a tenant table goes through a repository bound to one organization."""

from __future__ import annotations

from typing import Any, ClassVar, Generic, TypeVar

from sqlalchemy import Boolean, Select, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from kaanha.errors import NotFound
from kaanha.kit.pagination import PageRequest
from kaanha.models.base import TenantModel

M = TypeVar("M", bound=TenantModel)


class TenantRepository(Generic[M]):
    """Queries on `model` that can only ever see the rows of `organization_id`.

    Another organization's id is simply not found (404), never forbidden (403), so ids leak nothing.
    """

    model: ClassVar[type[Any]]
    not_found: ClassVar[type[NotFound]] = NotFound
    noun: ClassVar[str] = "Resource"

    def __init__(self, session: AsyncSession, organization_id: str) -> None:
        self.session = session
        self.organization_id = organization_id

    def select(self, *, narrower_filter_follows: bool = False) -> Select[M]:
        """Rows of this organization only.

        `narrower_filter_follows` tells SQLite's planner (which keeps no statistics) that the caller
        adds a far more selective condition, such as a full-text match: the tenant filter is marked
        likely() so the planner starts from that condition instead of scanning the tenant's index.
        """
        tenant = self.model.organization_id == self.organization_id
        if narrower_filter_follows and self._dialect() == "sqlite":
            tenant = func.likely(tenant, type_=Boolean)
        return select(self.model).where(tenant)

    def _dialect(self) -> str:
        return self.session.bind.dialect.name if self.session.bind else "sqlite"

    async def find(self, id_: str) -> M | None:
        if "\x00" in id_:  # no id has one, and PostgreSQL refuses the query
            return None
        result: M | None = await self.session.scalar(self.select().where(self.model.id == id_))
        return result

    async def get(self, id_: str) -> M:
        found = await self.find(id_)
        if found is None:
            raise self.not_found(f"{self.noun} {id_} not found")
        return found

    def add(self, row: M) -> M:
        row.organization_id = self.organization_id
        self.session.add(row)
        return row

    async def add_unless_taken(self, row: M) -> bool:
        """Insert `row` now; False when a unique key shows another transaction got there first.

        Earlier changes are flushed before the savepoint, so a conflict undoes this insert only
        and the caller's transaction goes on (to use the other row, or to skip a duplicate).
        """
        row.organization_id = self.organization_id
        await self.session.flush()
        try:
            async with self.session.begin_nested():
                self.session.add(row)
                await self.session.flush()
        except IntegrityError:
            return False
        return True

    async def page(self, query: Select[M], request: PageRequest) -> tuple[list[M], int]:
        """One page of `query` and the total number of rows it matches."""
        total = await self.session.scalar(select(func.count()).select_from(query.order_by(None).subquery()))
        rows = await self.session.scalars(query.limit(request.limit).offset(request.offset))
        return list(rows), int(total or 0)
