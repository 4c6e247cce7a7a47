"""Public shape of an analytics report (API.md's "Analytics" line) and of its CSV series."""

from __future__ import annotations

from pydantic import Field

from kaanha.ai_agents.schemas import AgentCounts
from kaanha.kit.schemas import Schema, Timestamp

# The CSV export's columns, in order: the series' fields as the JSON names them.
SERIES_COLUMNS = (
    "periodStart",
    "sent",
    "delivered",
    "read",
    "failed",
    "received",
    "conversationsOpened",
    "conversationsResolved",
)


class MessageFigures(Schema):
    sent: int
    delivered: int
    read: int
    failed: int
    received: int
    # delivered / sent and read / delivered; null when nothing was sent (or delivered) to divide by.
    delivery_rate: float | None
    read_rate: float | None


class FailureCount(Schema):
    code: int | None = Field(description="Meta's error code; null when the failure had none")
    reason: str
    count: int


class ConversationFigures(Schema):
    opened: int = Field(description="Openings in the range: new conversations and reopenings, however they began")
    opened_by_customer: int = Field(description="Of those, the ones the customer's message opened")
    opened_by_business: int = Field(
        description="Of those, the ones our message (a send, a template, a broadcast) or a person's reopening opened"
    )
    assigned: int = Field(description="Openings first assigned in the range")
    resolved: int


class Percentiles(Schema):
    median: float | None
    p90: float | None


class AgentFigures(Schema):
    user_id: str
    name: str | None
    role: str | None = Field(description="owner, admin or agent; null for a former member")
    conversations_assigned: int = Field(description="Openings first assigned in the range, to this person")
    conversations_resolved: int
    messages_sent: int
    first_response_median_seconds: float | None


class BroadcastFunnel(Schema):
    id: str
    name: str
    template_name: str
    status: str
    started_at: Timestamp
    recipients: int
    sent: int
    delivered: int
    read: int
    failed: int
    replied: int


class SeriesPoint(Schema):
    period_start: str = Field(
        description="The period's first day in the organization's time zone, YYYY-MM-DD (a Monday for weeks, the "
        "1st for months); a local date, not an instant"
    )
    sent: int = 0
    delivered: int = 0
    read: int = 0
    failed: int = 0
    received: int = 0
    conversations_opened: int = 0
    conversations_resolved: int = 0


class AnalyticsOut(Schema):
    from_: Timestamp = Field(
        alias="from", description="The range's first instant, in UTC (a date `from` is that local day's midnight)"
    )
    to: Timestamp = Field(
        description="The instant the range ends (excluded), in UTC: a date `to` ends at the next local midnight"
    )
    granularity: str
    timezone: str
    messages: MessageFigures
    failures_by_code: list[FailureCount]
    conversations: ConversationFigures
    first_response_seconds: Percentiles
    resolution_seconds: Percentiles
    agents: list[AgentFigures]
    ai_agents: list[AgentCounts] = Field(description="Per AI agent: conversations handled, replies, handoffs by reason")
    broadcasts: list[BroadcastFunnel]
    series: list[SeriesPoint]
