"""What a WhatsApp connection must do, whichever it is (the sandbox, or Meta's Cloud API)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from sqlalchemy.ext.asyncio import AsyncSession

from kaanha.models import Contact, Message, WhatsAppConnection


@dataclass(frozen=True)
class Outbound:
    message: Message
    contact: Contact
    connection: WhatsAppConnection
    reply_to_whatsapp_id: str | None


@dataclass(frozen=True)
class SendResult:
    whatsapp_message_id: str


class ProviderError(Exception):
    """A refusal from WhatsApp, with Meta's error code and what the user can do about it."""

    def __init__(self, code: int, message: str, *, retryable: bool, explanation: str | None = None) -> None:
        super().__init__(f"({code}) {message}")
        self.code = code
        self.message = message
        self.retryable = retryable
        self.explanation = explanation or message


class WhatsAppProvider(Protocol):
    async def send(self, session: AsyncSession, outbound: Outbound) -> SendResult:
        """Hand the message to WhatsApp; raise ProviderError when WhatsApp refuses it."""
        ...
