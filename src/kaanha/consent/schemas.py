"""Public shapes of opt-in history and of an organization's opt-in settings."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator

from kaanha.consent.keywords import (
    BUILT_IN_OPT_IN,
    BUILT_IN_OPT_OUT,
    MAX_KEYWORD_LENGTH,
    MAX_KEYWORDS,
    folded,
    tidy,
    unique,
)
from kaanha.kit.schemas import RequestSchema, Schema, Timestamp

# How a contact's opt-in changed: through the API, a keyword the customer wrote, an import, the dashboard.
# `whatsapp`: Meta refused a marketing send because the customer stopped marketing messages (131050).
ConsentSource = Literal["api", "keyword", "import", "dashboard", "whatsapp"]
MAX_REPLY_LENGTH = 1024


class ConsentChangeOut(Schema):
    id: str
    contact_id: str
    opted_in: bool
    source: str
    detail: str | None
    created_at: Timestamp


class OptInSettings(Schema):
    """Words that opt customers out and back in, besides the built-in ones, and the answers to them.

    A null reply is the built-in wording.
    """

    opt_out_keywords: list[str]
    opt_in_keywords: list[str]
    opt_out_reply: str | None
    opt_in_reply: str | None


def _check_keywords(words: list[str], which: str) -> list[str]:
    if len(words) > MAX_KEYWORDS:
        raise ValueError(f"at most {MAX_KEYWORDS} {which} keywords")
    for word in words:
        if not tidy(word):
            raise ValueError(f"{which} keywords can't be empty")
        if len(tidy(word)) > MAX_KEYWORD_LENGTH:
            raise ValueError(f"'{word}' is longer than {MAX_KEYWORD_LENGTH} characters, the most a keyword may have")
    return unique(words)


def _clashes(words: list[str], others: list[str] | tuple[str, ...]) -> list[str]:
    taken = {folded(other) for other in others}
    return [word for word in words if folded(word) in taken]


class OptInSettingsUpdate(RequestSchema):
    """`PUT /opt-in-settings` replaces the settings: an omitted list is empty, an omitted reply the built-in one."""

    opt_out_keywords: list[str] = Field(default_factory=list, examples=[["CANCEL", "NO MORE"]])
    opt_in_keywords: list[str] = Field(default_factory=list, examples=[["SUBSCRIBE"]])
    opt_out_reply: str | None = Field(default=None, max_length=MAX_REPLY_LENGTH)
    opt_in_reply: str | None = Field(default=None, max_length=MAX_REPLY_LENGTH)

    @field_validator("opt_out_keywords")
    @classmethod
    def _opt_out(cls, words: list[str]) -> list[str]:
        return _check_keywords(words, "opt-out")

    @field_validator("opt_in_keywords")
    @classmethod
    def _opt_in(cls, words: list[str]) -> list[str]:
        return _check_keywords(words, "opt-in")

    @field_validator("opt_out_reply", "opt_in_reply")
    @classmethod
    def _empty_is_built_in(cls, reply: str | None) -> str | None:
        return reply or None

    @model_validator(mode="after")
    def _no_word_goes_both_ways(self) -> OptInSettingsUpdate:
        both = _clashes(self.opt_out_keywords, self.opt_in_keywords)
        if both:
            raise ValueError(f"'{both[0]}' can't be both an opt-out and an opt-in keyword")
        reused = _clashes(self.opt_out_keywords, BUILT_IN_OPT_IN)
        if reused:
            raise ValueError(f"'{reused[0]}' is a built-in opt-in keyword, so it can't opt customers out")
        reused = _clashes(self.opt_in_keywords, BUILT_IN_OPT_OUT)
        if reused:
            raise ValueError(f"'{reused[0]}' is a built-in opt-out keyword, so it can't opt customers in")
        return self
