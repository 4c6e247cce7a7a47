"""The sandbox provider: accepts sends under the Cloud API's rules and reports statuses like Meta does."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from kaanha.conversations.window import is_window_open
from kaanha.kit.clock import now
from kaanha.kit.phone import wa_id
from kaanha.runtime import Runtime
from kaanha.templates.repository import TemplateRepository
from kaanha.whatsapp.provider import Outbound, PreparedSend, ProviderError, SendResult
from kaanha.whatsapp.sandbox.payloads import new_wamid, status_payload
from kaanha.worker.queue import enqueue

WEBHOOK_JOB = "sandbox.webhook"


class SandboxProvider:
    def __init__(self, runtime: Runtime) -> None:
        self.settings = runtime.settings.sandbox

    async def pace(self) -> None:
        """The sandbox has no throughput to respect."""

    async def prepare(self, session: AsyncSession, outbound: Outbound) -> PreparedSend:
        message = outbound.message
        if message.type != "template" and not is_window_open(outbound.contact.last_inbound_at):
            raise ProviderError(
                131047,
                "Re-engagement message",
                retryable=False,
                explanation="More than 24 hours have passed since the customer last replied; send a template.",
            )
        if message.type == "template":
            template = await TemplateRepository(session, message.organization_id).find_by_name(
                message.content.get("templateName", ""), message.content.get("language", "")
            )
            if template is None or template.status != "APPROVED":
                raise ProviderError(
                    132001,
                    "Template name does not exist in the translation",
                    retryable=False,
                    explanation="The template is missing or not approved in this language.",
                )
        wamid = new_wamid()
        self._report_later(session, outbound, wamid)
        return PreparedSend(whatsapp_message_id=wamid)

    async def dispatch(self, prepared: PreparedSend) -> SendResult:
        return SendResult(whatsapp_message_id=prepared.whatsapp_message_id or new_wamid())

    async def mark_read(self, whatsapp_message_id: str, *, typing: bool = False) -> None:
        """The sandbox's customers have no phone to show blue ticks on."""

    def _report_later(self, session: AsyncSession, outbound: Outbound, wamid: str) -> None:
        """Queue the status webhooks Meta would send: delivered, then read, a few seconds apart."""
        recipient = wa_id(outbound.contact.phone)
        moment = now()
        for status, after in (
            ("delivered", self.settings.delivered_after_seconds),
            ("read", self.settings.read_after_seconds),
        ):
            at = moment + timedelta(seconds=after)
            enqueue(
                session,
                kind=WEBHOOK_JOB,
                payload=status_payload(
                    outbound.connection,
                    wamid=wamid,
                    status=status,
                    recipient=recipient,
                    at=at,
                    callback_data=outbound.message.id,
                ),
                organization_id=outbound.message.organization_id,
                run_at=at,
            )
