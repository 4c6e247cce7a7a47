"""Opt-out and opt-in keywords: the built-in words, an organization's own, and spotting one in a message."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

# "STOP PROMOTIONS" is the text of the opt-out button Meta offers on marketing templates.
BUILT_IN_OPT_OUT = ("STOP", "UNSUBSCRIBE", "STOP PROMOTIONS")
BUILT_IN_OPT_IN = ("START",)
MAX_KEYWORDS = 20
MAX_KEYWORD_LENGTH = 30

DEFAULT_OPT_OUT_REPLY = "You've been unsubscribed from our marketing messages. Reply START to subscribe again."
DEFAULT_OPT_IN_REPLY = "You're subscribed to our marketing messages. Reply STOP to unsubscribe."

# A text this long can't be a keyword even with generous spacing; longer ones are not even normalized.
_LONGEST_CANDIDATE = 4 * MAX_KEYWORD_LENGTH


@dataclass(frozen=True)
class Keyword:
    """A keyword found in a customer's message: which way it goes, and the word as they wrote it."""

    opted_in: bool
    written: str


def tidy(word: str) -> str:
    """A keyword as stored: trimmed, inner runs of whitespace made one space, its case kept."""
    return " ".join(word.split())


def folded(word: str) -> str:
    """The form keywords are compared in: tidied and case-insensitive."""
    return tidy(word).casefold()


def unique(words: Iterable[str]) -> list[str]:
    """`words` tidied, without empty ones or repeats that differ only in case (the first one stays)."""
    seen: dict[str, str] = {}
    for word in words:
        if tidy(word):
            seen.setdefault(folded(word), tidy(word))
    return list(seen.values())


def opt_out_words(custom: Iterable[str]) -> set[str]:
    return {folded(word) for word in (*BUILT_IN_OPT_OUT, *custom)}


def opt_in_words(custom: Iterable[str]) -> set[str]:
    return {folded(word) for word in (*BUILT_IN_OPT_IN, *custom)}


def candidates(message_type: str, content: dict[str, Any]) -> tuple[list[str], list[str]]:
    """What a customer's message says, as (visible, hidden) texts that may be a keyword.

    Visible: a text message, or the label of a button or list row the customer tapped. Hidden: the
    payload or id the business gave that button, which the customer never saw.
    """
    if message_type == "text":
        return [_string(content.get("text"))], []
    if message_type == "button":  # a quick-reply button of a template
        return [_string(content.get("text"))], [_string(content.get("payload"))]
    if message_type == "interactive":
        found = content.get("interactive")
        reply: dict[str, Any] = found if isinstance(found, dict) else {}
        if reply.get("type") in ("button_reply", "list_reply"):
            return [_string(reply.get("title"))], [_string(reply.get("id"))]
    return [], []


def find(visible: list[str], hidden: list[str], *, opt_out: set[str], opt_in: set[str]) -> Keyword | None:
    """The keyword that a message is, exactly (trimmed, any case), or None.

    A sentence that merely contains "stop" is no keyword. A hidden payload can only opt out: a
    button's id such as "start" was chosen by the business, and must never sign a customer up.
    """
    for text in visible + hidden:
        if could_be_keyword(text) and folded(text) in opt_out:
            return Keyword(opted_in=False, written=text.strip())
    for text in visible:
        if could_be_keyword(text) and folded(text) in opt_in:
            return Keyword(opted_in=True, written=text.strip())
    return None


def could_be_keyword(text: str) -> bool:
    """Short enough to be one: most messages are not, and are told apart without any lookup."""
    return bool(text) and len(text) <= _LONGEST_CANDIDATE and 1 <= len(tidy(text)) <= MAX_KEYWORD_LENGTH


def _string(value: Any) -> str:
    return value if isinstance(value, str) else ""
