"""What a WhatsApp connection must do, whichever it is (the sandbox, or Meta's Cloud API).

A send has two steps so that a crash can never make us send twice: `prepare` runs in the
transaction that marks the message as handed over (uploads, checks, the request body), then
`dispatch` makes the one call that may reach WhatsApp, outside any transaction.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, Protocol

from sqlalchemy.ext.asyncio import AsyncSession

from kaanha.models import Contact, Message, WhatsAppConnection


@dataclass(frozen=True)
class Outbound:
    message: Message
    contact: Contact
    connection: WhatsAppConnection
    reply_to_whatsapp_id: str | None


@dataclass(frozen=True)
class PreparedSend:
    body: dict[str, Any] = field(default_factory=dict)
    # Known before dispatch when the provider makes its own ids (the sandbox).
    whatsapp_message_id: str | None = None


@dataclass(frozen=True)
class SendResult:
    whatsapp_message_id: str


class ProviderError(Exception):
    """A refusal from WhatsApp, with Meta's error code and what the user can do about it.

    `in_doubt` marks a failure after which WhatsApp may have the message all the same (a timeout
    once the request was written): such a send is never simply repeated.
    """

    def __init__(
        self,
        code: int,
        message: str,
        *,
        retryable: bool,
        explanation: str | None = None,
        retry_after: timedelta | None = None,
        in_doubt: bool = False,
    ) -> None:
        super().__init__(f"({code}) {message}")
        self.code = code
        self.message = message
        self.retryable = retryable
        self.explanation = explanation or message
        self.retry_after = retry_after
        self.in_doubt = in_doubt


class Paced(ProviderError):
    """No send slot for this number right now: a wait, not a refusal from WhatsApp."""

    def __init__(self, message: str) -> None:
        super().__init__(130429, message, retryable=True, explanation="Paced to the number's throughput")


class WhatsAppProvider(Protocol):
    async def pace(self) -> None:
        """Wait for a send slot of the number; raise Paced if none frees up soon."""
        ...

    async def prepare(self, session: AsyncSession, outbound: Outbound) -> PreparedSend:
        """Everything before the call: checks, uploads, the request body. May raise ProviderError."""
        ...

    async def dispatch(self, prepared: PreparedSend) -> SendResult:
        """Hand the message to WhatsApp; raise ProviderError when WhatsApp refuses it or can't be reached."""
        ...

    async def mark_read(self, whatsapp_message_id: str, *, typing: bool = False) -> None:
        """Tell WhatsApp the customer's message was read (blue ticks on their phone); `typing` shows "typing…"."""
        ...
