"""HTTP endpoints for analytics: the report as JSON, and its series as CSV."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated

from fastapi import APIRouter, Depends, Query
from fastapi.responses import StreamingResponse

from kaanha.analytics import service
from kaanha.analytics.schemas import AnalyticsOut
from kaanha.auth.principal import Principal
from kaanha.errors import InvalidRequest
from kaanha.http.dependencies import SessionDep, require_scope

router = APIRouter(prefix="/analytics", tags=["Analytics"])

Reader = Annotated[Principal, Depends(require_scope("analytics:read"))]
From = Annotated[
    str | None,
    Query(
        alias="from",
        max_length=40,
        description="A date (YYYY-MM-DD, a day in the organization's time zone) or a datetime with its offset; "
        "default 29 days before `to`",
    ),
]
To = Annotated[
    str | None,
    Query(
        alias="to",
        max_length=40,
        description="A date (included whole) or a datetime with its offset (excluded); default today",
    ),
]
Granularity = Annotated[str | None, Query(max_length=10, description="day (default), week (from Monday) or month")]


class UnsupportedExportFormat(InvalidRequest):
    code = "unsupported_format"


@router.get(
    "",
    summary="Messages, conversations, response times, agents and broadcasts over a range",
    response_model=AnalyticsOut,
    description="Figures for a range in the organization's time zone (default: the last 30 days, today "
    "included), with a series per day, week or month in which empty periods are zeros. At most 366 days "
    "by day and 731 by week or month.",
)
async def get_analytics(
    principal: Reader,
    session: SessionDep,
    start: From = None,
    end: To = None,
    granularity: Granularity = None,
) -> AnalyticsOut:
    return await service.get_analytics(
        session, organization_id=principal.organization_id, start=start, end=end, granularity=granularity
    )


@router.get(
    "/export",
    summary="The analytics series as CSV",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/csv": {}}, "description": "One row per period, a header first"}},
)
async def export_analytics(
    principal: Reader,
    session: SessionDep,
    start: From = None,
    end: To = None,
    granularity: Granularity = None,
    format: Annotated[str, Query(max_length=10, description="csv, the only format")] = "csv",
) -> StreamingResponse:
    if format.strip().lower() != "csv":
        raise UnsupportedExportFormat(f"format must be csv, not {format!r}")
    report, points = await service.get_series(
        session, organization_id=principal.organization_id, start=start, end=end, granularity=granularity
    )
    first = report.local(report.start).date().isoformat()
    last = report.local(report.end - timedelta(microseconds=1)).date().isoformat()
    filename = f"kaanha-analytics-{first}-to-{last}-{report.granularity}.csv"
    return StreamingResponse(
        service.series_csv(points),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )
