"""What every provider is given and answers, and how a failed call is told apart from a refusal to answer."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from kaanha.ai_agents.retrieval import Hit

# An LLM says this (alone) when the passages don't hold the answer; we then hand over.
HANDOFF_MARKER = "[HANDOFF]"


@dataclass(frozen=True)
class Turn:
    role: str  # "customer" | "agent"
    text: str


@dataclass(frozen=True)
class AnswerRequest:
    agent_name: str
    instructions: str
    model: str
    question: str
    history: list[Turn] = field(default_factory=list)  # earlier turns, oldest first, without `question`
    passages: list[Hit] = field(default_factory=list)
    small_talk: bool = False


@dataclass(frozen=True)
class ProviderAnswer:
    """The reply to send, or None when the provider could not answer from the knowledge it was given."""

    text: str | None


class ProviderFailure(Exception):
    """The model could not be asked: refused (bad key), overloaded, too slow or unreachable.

    `retryable` failures are tried once more (after `retry_after` seconds when the provider said so);
    the others, and a second failure, hand the conversation over.
    """

    def __init__(self, message: str, *, retryable: bool, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retryable = retryable
        self.retry_after = retry_after


class AgentProvider(Protocol):
    async def answer(self, request: AnswerRequest) -> ProviderAnswer:
        """Answer the customer's question from the passages; raise ProviderFailure when the call fails."""
        ...


def system_prompt(request: AnswerRequest) -> str:
    """The instructions an LLM gets: the business's own, the passages, and when to hand over."""
    lines = [
        f"You are {request.agent_name}, answering a customer on WhatsApp for a business.",
        "Answer briefly and only from the knowledge below. Never invent prices, dates or policies.",
        f"If the knowledge does not answer the customer, reply with exactly {HANDOFF_MARKER} and nothing else;"
        " a person will take over.",
    ]
    if request.instructions.strip():
        lines += ["", "The business's instructions:", request.instructions.strip()]
    lines += ["", "Knowledge:"]
    if not request.passages:
        lines.append("(none matches this message; answer only greetings or thanks, otherwise hand over)")
    for number, hit in enumerate(request.passages, start=1):
        passage = hit.passage
        if passage.question:
            lines.append(f"[{number}] Question: {passage.question}\nAnswer: {passage.answer}")
        else:
            lines.append(f"[{number}] {passage.document_name or 'Document'}: {passage.text}")
    return "\n".join(lines)


def is_handoff(text: str) -> bool:
    return not text.strip() or text.strip().upper().startswith(HANDOFF_MARKER)
