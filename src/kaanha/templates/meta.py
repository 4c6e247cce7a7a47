"""Templates at Meta (Cloud API connections): submit one for review, delete one, read every page of the list."""

from __future__ import annotations

from typing import Any

from kaanha.errors import KaanhaError
from kaanha.models import Template, WhatsAppConnection
from kaanha.runtime import Runtime
from kaanha.templates.repository import DuplicateTemplate
from kaanha.templates.rules import NewTemplate
from kaanha.whatsapp.cloud_api.client import GraphClient, GraphError, GraphUnreachable
from kaanha.whatsapp.cloud_api.provider import graph_client

# Meta's subcode for "there is already <language> content for this template".
ALREADY_EXISTS_SUBCODE = 2388024
# Meta's list is paged; 100 per page keeps a large WABA (up to 6,000 templates) to a few calls.
PAGE_SIZE = 100
MAX_PAGES = 100
LIST_FIELDS = "id,name,language,status,category,components,parameter_format,quality_score,rejected_reason"


class TemplateRejectedByMeta(KaanhaError):
    status_code = 400
    code = "template_rejected_by_meta"


class MetaRefused(KaanhaError):
    """Meta refused to list or delete templates (an expired token, a missing permission...)."""

    status_code = 400
    code = "meta_refused"


class MetaUnreachable(KaanhaError):
    status_code = 502
    code = "meta_unreachable"


def _client(runtime: Runtime, connection: WhatsAppConnection) -> GraphClient:
    return graph_client(runtime, runtime.secret_box.decrypt(connection.access_token_encrypted or ""))


async def submit(runtime: Runtime, connection: WhatsAppConnection, template: NewTemplate) -> dict[str, Any]:
    """Meta's answer to a new template, `{"id", "status", "category"}`; nothing is stored by the caller before it."""
    try:
        answer = await _client(runtime, connection).create_template(connection.waba_id or "", template.graph_body())
    except GraphUnreachable as error:
        raise MetaUnreachable(
            f"Could not reach Meta to submit template '{template.name}' ({error}); nothing was created here. If "
            "Meta did receive it, the next template sync (every 15 minutes, or POST /templates/sync) brings it in."
        ) from None
    except GraphError as error:
        if error.subcode == ALREADY_EXISTS_SUBCODE:
            raise DuplicateTemplate(
                f"Meta already has template '{template.name}' in {template.language}: POST /templates/sync brings "
                "it in, or choose another name"
            ) from None
        raise TemplateRejectedByMeta(
            f"Meta refused template '{template.name}' ({error.code}): {error.readable}"
        ) from None
    if not answer.get("id"):
        raise MetaUnreachable(
            f"Meta answered without an id for template '{template.name}'; nothing was created here. A template "
            "sync brings it in if Meta did create it."
        )
    return answer


async def remove(runtime: Runtime, connection: WhatsAppConnection, template: Template) -> None:
    """Delete the template's language at Meta (by name and `hsm_id`, so its other languages stay)."""
    try:
        await _client(runtime, connection).delete_template(
            connection.waba_id or "", name=template.name, template_id=template.external_id
        )
    except GraphUnreachable as error:
        raise MetaUnreachable(
            f"Could not reach Meta to delete template '{template.name}' ({error}); nothing was deleted. Try again."
        ) from None
    except GraphError as error:
        raise MetaRefused(
            f"Meta refused to delete template '{template.name}' ({error.code}): {error.readable}. If it is already "
            "gone from Meta, POST /templates/sync removes it here."
        ) from None


async def fetch_all(runtime: Runtime, connection: WhatsAppConnection) -> list[dict[str, Any]]:
    """Every template of the connection's WABA, following Meta's cursors to the last page."""
    client = _client(runtime, connection)
    found: list[dict[str, Any]] = []
    after: str | None = None
    try:
        for _ in range(MAX_PAGES):
            page = await client.templates(connection.waba_id or "", after=after, limit=PAGE_SIZE, fields=LIST_FIELDS)
            found += [item for item in page.get("data") or [] if isinstance(item, dict)]
            paging = page.get("paging")
            paging = paging if isinstance(paging, dict) else {}
            cursors = paging.get("cursors")
            cursor = cursors.get("after") if isinstance(cursors, dict) else None
            if not paging.get("next") or not cursor or cursor == after:
                return found
            after = str(cursor)
    except GraphUnreachable as error:
        raise MetaUnreachable(f"Could not reach Meta to read the templates ({error}); nothing changed") from None
    except GraphError as error:
        raise MetaRefused(
            f"Meta refused to list the templates ({error.code}): {error.readable}; nothing changed"
        ) from None
    return found
