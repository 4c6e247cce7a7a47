"""Public shapes of AI agents, their test answers and their activity."""

from __future__ import annotations

import re
from typing import Literal

from pydantic import Field, field_validator, model_validator

from kaanha.kit.schemas import RequestSchema, Schema, Timestamp

Provider = Literal["builtin", "openai", "anthropic"]
Day = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
HandoffReason = Literal[
    "keyword",
    "low_confidence",
    "max_replies",
    "provider_error",
    "unsupported_message",
    "window_closed",
    "send_failed",
]
BUILTIN_MODELS = ("lexical", "semantic")
DEFAULT_KEYWORDS = ["human", "agent", "person", "representative", "operator"]
# Tuned on benchmarks/ai_agents_data.json (docs/decisions.md): fewer wrong answers over more answers.
DEFAULT_CONFIDENCE_THRESHOLD = 0.38
DEFAULT_MAX_BOT_REPLIES = 5
DEFAULT_HANDOFF_MESSAGE = "Let me pass you to a colleague who can help with this. They will reply here shortly."
MAX_KNOWLEDGE_ITEMS = 500
MAX_DOCUMENTS = 20
MAX_DOCUMENT_CHARACTERS = 200_000
_TIME = re.compile(r"^([01]\d|2[0-3]):[0-5]\d$")


class KnowledgeItem(RequestSchema):
    question: str = Field(min_length=1, max_length=500)
    answer: str = Field(min_length=1, max_length=4000)


class BusinessHours(RequestSchema):
    """Open from `open` to `close` (24-hour HH:MM, in the organization's time zone) on `days`."""

    days: list[Day] = Field(min_length=1, max_length=7)
    open: str = Field(examples=["09:00"])
    close: str = Field(examples=["18:00"])

    @model_validator(mode="after")
    def _times(self) -> BusinessHours:
        for value in (self.open, self.close):
            if not _TIME.match(value):
                raise ValueError(f"'{value}' is not a time of day as HH:MM (00:00 to 23:59)")
        if self.open >= self.close:
            raise ValueError("open must be before close; split hours past midnight into two entries")
        return self


class Serves(RequestSchema):
    """Which conversations the agent answers: all, those of contacts with one of `tags`, and/or only after hours."""

    tags: list[str] = Field(default_factory=list, max_length=50, description="Empty: every contact")
    only_outside_business_hours: bool = False
    business_hours: list[BusinessHours] = Field(default_factory=list, max_length=14)

    @field_validator("tags")
    @classmethod
    def _tags(cls, value: list[str]) -> list[str]:
        cleaned = [tag.strip() for tag in value]
        if any(not tag or len(tag) > 50 for tag in cleaned):
            raise ValueError("tags must be 1 to 50 characters")
        return list(dict.fromkeys(cleaned))

    @model_validator(mode="after")
    def _hours_needed(self) -> Serves:
        if self.only_outside_business_hours and not self.business_hours:
            raise ValueError("onlyOutsideBusinessHours needs businessHours, e.g. [{days: [mon, ...], open, close}]")
        return self


class Handoff(RequestSchema):
    """When the agent gives the conversation to people, and what it tells the customer then."""

    keywords: list[str] = Field(default_factory=lambda: list(DEFAULT_KEYWORDS), max_length=50)
    confidence_threshold: float = Field(default=DEFAULT_CONFIDENCE_THRESHOLD, ge=0, le=1)
    max_bot_replies: int = Field(default=DEFAULT_MAX_BOT_REPLIES, ge=1, le=100)
    message: str = Field(default=DEFAULT_HANDOFF_MESSAGE, min_length=1, max_length=1000)

    @field_validator("keywords")
    @classmethod
    def _keywords(cls, value: list[str]) -> list[str]:
        cleaned = [keyword.strip().lower() for keyword in value]
        if any(not keyword or len(keyword) > 50 for keyword in cleaned):
            raise ValueError("keywords must be 1 to 50 characters")
        return list(dict.fromkeys(cleaned))


class DocumentIn(RequestSchema):
    """A document as `text`, or an uploaded PDF or DOCX by `mediaId` (POST /media)."""

    name: str | None = Field(default=None, max_length=200)
    text: str | None = Field(default=None, min_length=1, max_length=MAX_DOCUMENT_CHARACTERS)
    media_id: str | None = Field(default=None, max_length=40)

    @model_validator(mode="after")
    def _one_source(self) -> DocumentIn:
        if (self.text is None) == (self.media_id is None):
            raise ValueError("give a document either 'text' or 'mediaId' (an uploaded PDF or DOCX)")
        return self


class AgentCreate(RequestSchema):
    name: str = Field(min_length=1, max_length=200)
    instructions: str = Field(default="", max_length=8000, description="Tone, what to do and not to do")
    provider: Provider = "builtin"
    model: str | None = Field(
        default=None,
        min_length=1,
        max_length=200,
        description="builtin: `lexical` or `semantic` (default: semantic when installed); else the provider's "
        "model name, e.g. gpt-4o-mini or claude-sonnet-4-5",
    )
    base_url: str | None = Field(default=None, max_length=2048, description="OpenAI-compatible servers only")
    api_key: str | None = Field(default=None, min_length=1, max_length=1000, description="Write-only")
    knowledge_base: list[KnowledgeItem] = Field(default_factory=list, max_length=MAX_KNOWLEDGE_ITEMS)
    documents: list[DocumentIn] = Field(default_factory=list, max_length=MAX_DOCUMENTS)
    serves: Serves = Field(default_factory=Serves)
    handoff: Handoff = Field(default_factory=Handoff)
    enabled: bool = True


class AgentUpdate(RequestSchema):
    """Only the fields present change; `knowledgeBase`, `documents`, `serves` and `handoff` are replaced whole."""

    name: str | None = Field(default=None, min_length=1, max_length=200)
    instructions: str | None = Field(default=None, max_length=8000)
    provider: Provider | None = None
    model: str | None = Field(default=None, min_length=1, max_length=200)
    base_url: str | None = Field(default=None, max_length=2048)
    api_key: str | None = Field(default=None, min_length=1, max_length=1000)
    knowledge_base: list[KnowledgeItem] | None = Field(default=None, max_length=MAX_KNOWLEDGE_ITEMS)
    documents: list[DocumentIn] | None = Field(default=None, max_length=MAX_DOCUMENTS)
    serves: Serves | None = None
    handoff: Handoff | None = None
    enabled: bool | None = None


class DocumentOut(Schema):
    id: str
    name: str
    source: Literal["text", "pdf", "docx"]
    media_id: str | None
    characters: int
    passages: int


class KnowledgeItemOut(Schema):
    question: str
    answer: str


class BusinessHoursOut(Schema):
    days: list[str]
    open: str
    close: str


class ServesOut(Schema):
    tags: list[str]
    only_outside_business_hours: bool
    business_hours: list[BusinessHoursOut]


class HandoffOut(Schema):
    keywords: list[str]
    confidence_threshold: float
    max_bot_replies: int
    message: str


class AgentOut(Schema):
    id: str
    name: str
    instructions: str
    provider: Provider
    model: str
    base_url: str | None
    has_api_key: bool
    knowledge_base: list[KnowledgeItemOut]
    documents: list[DocumentOut]
    serves: ServesOut
    handoff: HandoffOut
    enabled: bool
    created_at: Timestamp
    updated_at: Timestamp


class TestRequest(RequestSchema):
    question: str = Field(min_length=1, max_length=4096)


class PassageOut(Schema):
    source: Literal["knowledge_base", "document"]
    question: str | None
    text: str
    document_id: str | None
    document_name: str | None
    confidence: float


class TestAnswer(Schema):
    reply: str
    handoff: bool
    reason: HandoffReason | None
    confidence: float
    passages: list[PassageOut]


class RunOut(Schema):
    """One stretch of a conversation the agent handled."""

    id: str
    agent_id: str
    conversation_id: str
    status: Literal["active", "stopped", "ended"]
    bot_replies: int
    handoff_reason: str | None
    handoff_note: str | None
    handed_off_at: Timestamp | None
    stop_reason: str | None
    stopped_at: Timestamp | None
    ended_at: Timestamp | None
    started_at: Timestamp


class AgentCounts(Schema):
    """What an agent did in a period, for analytics."""

    agent_id: str
    name: str
    conversations_handled: int
    replies_sent: int
    handoffs: int
    handoffs_by_reason: dict[str, int]
