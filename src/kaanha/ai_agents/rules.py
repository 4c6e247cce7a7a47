"""The rules an agent follows: which conversations it serves, what it can read, and when words ask for a person."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from kaanha.models import AiAgent, Message

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
# Messages that are not something said to the business (a reaction, a deletion, an edit, a notice
# from WhatsApp): the agent neither answers nor hands over for them.
NOT_ADDRESSED = frozenset({"reaction", "revoke", "edit", "system"})
SMALL_TALK = frozenset(
    [
        "hi",
        "hii",
        "hiii",
        "hello",
        "hey",
        "heya",
        "hola",
        "namaste",
        "good",
        "morning",
        "afternoon",
        "evening",
        "day",
        "thanks",
        "thank",
        "you",
        "thx",
        "ty",
        "ok",
        "okay",
        "great",
        "cool",
        "nice",
        "bye",
        "goodbye",
        "see",
        "cheers",
        "there",
    ]
)


def serves(agent: AiAgent, *, tags: set[str], at: datetime, timezone: str) -> bool:
    """Whether `agent` answers a contact with `tags` writing at `at` (an aware time)."""
    rules = agent.serves or {}
    wanted = set(rules.get("tags") or [])
    if wanted and not wanted & tags:
        return False
    if rules.get("onlyOutsideBusinessHours"):
        return not within_business_hours(rules.get("businessHours") or [], at=at, timezone=timezone)
    return True


def within_business_hours(hours: list[dict[str, Any]], *, at: datetime, timezone: str) -> bool:
    """Whether `at` falls in one of the `hours` entries, read in the organization's time zone."""
    try:
        zone = ZoneInfo(timezone or "UTC")
    except (ZoneInfoNotFoundError, ValueError):
        zone = ZoneInfo("UTC")
    local = at.astimezone(zone)
    day, clock = DAYS[local.weekday()], local.strftime("%H:%M")
    return any(day in entry.get("days", []) and entry["open"] <= clock < entry["close"] for entry in hours)


def question_of(message: Message) -> str | None:
    """What the customer said, as text: a text, a button's or list reply's title, a media caption."""
    content = message.content or {}
    if message.type in ("text", "button"):
        text = content.get("text")
    elif message.type == "interactive":
        text = (content.get("interactive") or {}).get("title")
    else:
        text = content.get("caption")
    return text.strip() if isinstance(text, str) and text.strip() else None


def handoff_keyword(text: str, keywords: list[str]) -> str | None:
    """The first handoff word or phrase the text contains as whole words ("agent", not "agents'"... "reagent")."""
    lowered = text.lower()
    for keyword in keywords:
        if re.search(rf"(?<!\w){re.escape(keyword.lower())}(?!\w)", lowered):
            return keyword
    return None


def is_small_talk(text: str) -> bool:
    """A greeting or thanks and nothing else: answered kindly, never a reason to hand over."""
    words = re.findall(r"[a-z]+", text.lower())
    return bool(words) and len(words) <= 5 and all(word in SMALL_TALK for word in words)
