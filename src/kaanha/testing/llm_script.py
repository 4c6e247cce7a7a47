"""What the fake model APIs do next: answer, fail with a given status, or take their time. Shared by both fakes."""

from __future__ import annotations

import asyncio
import re
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

# What a faithful model does with our prompt: answer from the first knowledge passage, else hand over.
_FIRST_ANSWER = re.compile(r"^Answer: (.+)$", re.MULTILINE)
_FIRST_PASSAGE = re.compile(r"^\[1\] [^:\n]+: (.+)$", re.MULTILINE)


def answer_from_prompt(system: str, _question: str) -> str:
    found = _FIRST_ANSWER.search(system) or _FIRST_PASSAGE.search(system)
    return found.group(1).strip() if found else "[HANDOFF]"


@dataclass
class Step:
    """One scripted call: a failure status (with Retry-After) and/or a delay before answering."""

    status: int | None = None
    retry_after: float | None = None
    delay: float = 0.0


@dataclass
class LlmScript:
    """The fake's behaviour and what it was asked; steps are used up one per request, in order."""

    api_key: str
    reply: Callable[[str, str], str] = answer_from_prompt
    steps: deque[Step] = field(default_factory=deque)
    requests: list[dict[str, Any]] = field(default_factory=list)

    def fail_next(self, status: int, *, retry_after: float | None = None, times: int = 1) -> None:
        self.steps.extend(Step(status=status, retry_after=retry_after) for _ in range(times))

    def delay_next(self, seconds: float, *, times: int = 1) -> None:
        self.steps.extend(Step(delay=seconds) for _ in range(times))

    async def next_step(self) -> Step:
        step = self.steps.popleft() if self.steps else Step()
        if step.delay:
            await asyncio.sleep(step.delay)
        return step
