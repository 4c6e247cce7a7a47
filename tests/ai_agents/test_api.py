"""GET/POST /ai-agents, GET/PATCH/DELETE /ai-agents/{id}, documents and POST /ai-agents/{id}/test."""

from __future__ import annotations

import io

import docx
import pytest
from sqlalchemy import func, select

from kaanha.ai_agents import documents
from kaanha.models import AiAgent, AiAgentPassage
from tests.ai_agents.conftest import ANTHROPIC_URL, KNOWLEDGE, OPENAI_URL, agent_body, create_agent
from tests.conftest import API, make_tenant
from tests.helpers import assert_error


async def count_rows(runtime) -> tuple[int, int]:  # type: ignore[no-untyped-def]
    async with runtime.database.sessions() as session:
        agents = await session.scalar(select(func.count()).select_from(AiAgent))
        passages = await session.scalar(select(func.count()).select_from(AiAgentPassage))
    return int(agents or 0), int(passages or 0)


async def test_an_agent_is_created_read_listed_changed_and_deleted(client, tenant, runtime):
    created = await create_agent(client, tenant, instructions="Be brief and warm.")

    assert created["id"].startswith("agt_")
    assert created["provider"] == "builtin"
    assert created["model"] == "lexical"
    assert created["knowledgeBase"] == KNOWLEDGE
    assert created["serves"] == {"tags": [], "onlyOutsideBusinessHours": False, "businessHours": []}
    assert created["handoff"]["keywords"] == ["human", "agent", "person", "representative", "operator"]
    assert created["handoff"]["maxBotReplies"] == 5
    assert created["enabled"] is True
    assert created["hasApiKey"] is False
    assert await count_rows(runtime) == (1, 3)

    got = await client.get(f"{API}/ai-agents/{created['id']}", headers=tenant.headers)
    assert got.json() == created
    listed = await client.get(f"{API}/ai-agents", headers=tenant.headers)
    assert [agent["id"] for agent in listed.json()["data"]] == [created["id"]]
    assert listed.json()["pagination"]["total"] == 1

    patched = await client.patch(
        f"{API}/ai-agents/{created['id']}",
        json={"knowledgeBase": KNOWLEDGE[:1], "handoff": {"maxBotReplies": 2}, "enabled": False},
        headers=tenant.headers,
    )
    assert patched.status_code == 200, patched.text
    assert patched.json()["knowledgeBase"] == KNOWLEDGE[:1]
    assert patched.json()["handoff"]["maxBotReplies"] == 2
    assert patched.json()["handoff"]["confidenceThreshold"] == created["handoff"]["confidenceThreshold"]
    assert patched.json()["enabled"] is False
    assert patched.json()["instructions"] == "Be brief and warm."
    assert await count_rows(runtime) == (1, 1)

    deleted = await client.delete(f"{API}/ai-agents/{created['id']}", headers=tenant.headers)
    assert deleted.status_code == 204
    assert_error(
        await client.get(f"{API}/ai-agents/{created['id']}", headers=tenant.headers), 404, "ai_agent_not_found"
    )
    assert await count_rows(runtime) == (0, 0)


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ({"name": ""}, "name"),
        ({"provider": "gemini"}, "provider"),
        ({"model": "gpt-4o"}, "lexical"),
        ({"provider": "openai", "model": "gpt-4o-mini"}, "apiKey"),
        ({"provider": "anthropic", "model": None, "apiKey": "k"}, "model"),
        ({"knowledgeBase": [{"question": "Q?"}]}, "answer"),
        ({"handoff": {"confidenceThreshold": 1.5}}, "confidenceThreshold"),
        ({"handoff": {"maxBotReplies": 0}}, "maxBotReplies"),
        ({"serves": {"onlyOutsideBusinessHours": True}}, "businessHours"),
        (
            {
                "serves": {
                    "onlyOutsideBusinessHours": True,
                    "businessHours": [{"days": ["mon"], "open": "18:00", "close": "09:00"}],
                }
            },
            "before close",
        ),
        ({"serves": {"businessHours": [{"days": ["monday"], "open": "09:00", "close": "18:00"}]}}, "days"),
        ({"documents": [{"name": "empty"}]}, "text"),
        ({"documents": [{"text": "x", "mediaId": "med_x"}]}, "either"),
        ({"surprise": True}, "surprise"),
    ],
)
async def test_invalid_agents_are_refused_with_400_and_nothing_written(client, tenant, runtime, body, fragment):
    response = await client.post(f"{API}/ai-agents", json=agent_body(**body), headers=tenant.headers)

    error = assert_error(response, 400)
    assert fragment in error["error"], error
    assert await count_rows(runtime) == (0, 0)


async def test_an_invalid_change_changes_nothing(client, tenant, runtime):
    created = await create_agent(client, tenant)

    for body in ({"provider": "openai"}, {"name": None}, {}, {"knowledgeBase": [{"question": "only"}]}):
        response = await client.patch(f"{API}/ai-agents/{created['id']}", json=body, headers=tenant.headers)
        assert_error(response, 400)

    assert (await client.get(f"{API}/ai-agents/{created['id']}", headers=tenant.headers)).json() == created
    assert await count_rows(runtime) == (1, 3)


async def test_the_api_key_is_stored_encrypted_and_never_shown(client, tenant, runtime):
    created = await create_agent(
        client, tenant, provider="openai", model="gpt-4o-mini", apiKey="sk-secret-1234", baseUrl=OPENAI_URL
    )

    assert created["hasApiKey"] is True
    assert "sk-secret-1234" not in str(created)
    async with runtime.database.sessions() as session:
        stored = await session.scalar(select(AiAgent.api_key_encrypted))
    assert stored is not None
    assert "sk-secret" not in stored
    assert runtime.secret_box.decrypt(stored) == "sk-secret-1234"

    # Another provider never gets this one's key.
    switched = await client.patch(
        f"{API}/ai-agents/{created['id']}",
        json={
            "provider": "anthropic",
            "model": "claude-sonnet-4-5",
            "apiKey": "sk-ant-other",
            "baseUrl": ANTHROPIC_URL,
        },
        headers=tenant.headers,
    )
    assert switched.status_code == 200, switched.text
    async with runtime.database.sessions() as session:
        stored = await session.scalar(select(AiAgent.api_key_encrypted))
    assert runtime.secret_box.decrypt(stored or "") == "sk-ant-other"


async def test_a_private_base_url_is_refused_unless_allowed(client, tenant, runtime):
    runtime.settings.allow_private_urls = False
    body = {"provider": "openai", "model": "m", "apiKey": "k", "baseUrl": "http://127.0.0.1:8080/v1"}

    assert_error(await client.post(f"{API}/ai-agents", json=agent_body(**body), headers=tenant.headers), 400)


async def test_documents_as_text_docx_and_pdf_become_passages(client, tenant, runtime):
    document = docx.Document()
    document.add_paragraph("Warranty: every appliance has a two-year warranty covering parts and labour.")
    buffer = io.BytesIO()
    document.save(buffer)
    uploaded = await client.post(
        f"{API}/media",
        files={
            "file": (
                "warranty.docx",
                buffer.getvalue(),
                "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
            )
        },
        headers=tenant.headers,
    )
    assert uploaded.status_code == 201, uploaded.text

    created = await create_agent(
        client,
        tenant,
        knowledgeBase=[],
        documents=[
            {"name": "Shipping", "text": "Shipping abroad takes ten days.\n\nCustoms duties are paid by the buyer."},
            {"mediaId": uploaded.json()["mediaId"]},
        ],
    )
    assert [(d["name"], d["source"], d["passages"]) for d in created["documents"]] == [
        ("Shipping", "text", 1),
        ("warranty.docx", "docx", 1),
    ]

    added = await client.post(
        f"{API}/ai-agents/{created['id']}/documents",
        files={"file": ("prices.pdf", pdf_with_text("Gift wrapping costs 50 rupees per parcel."), "application/pdf")},
        headers=tenant.headers,
    )
    assert added.status_code == 201, added.text
    assert [d["source"] for d in added.json()["documents"]] == ["text", "docx", "pdf"]

    answer = await client.post(
        f"{API}/ai-agents/{created['id']}/test",
        json={"question": "what warranty do appliances have?"},
        headers=tenant.headers,
    )
    assert answer.json()["handoff"] is False, answer.text
    assert "two-year warranty" in answer.json()["reply"]
    assert answer.json()["passages"][0]["documentName"] == "warranty.docx"
    gift = await client.post(
        f"{API}/ai-agents/{created['id']}/test", json={"question": "gift wrapping per parcel?"}, headers=tenant.headers
    )
    assert "50 rupees" in gift.json()["reply"], gift.text


async def test_an_upload_that_is_not_a_document_is_refused(client, tenant, runtime):
    created = await create_agent(client, tenant)
    png = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x02\x00\x00\x00\x00\x00\x00\x00"

    response = await client.post(
        f"{API}/ai-agents/{created['id']}/documents",
        files={"file": ("a.png", png, "image/png")},
        headers=tenant.headers,
    )

    assert_error(response, 400, "unreadable_document")
    assert (await client.get(f"{API}/ai-agents/{created['id']}", headers=tenant.headers)).json()["documents"] == []


async def test_the_test_endpoint_answers_or_hands_over_without_sending(client, tenant):
    created = await create_agent(client, tenant)

    answered = await client.post(
        f"{API}/ai-agents/{created['id']}/test", json={"question": "what does delivery cost?"}, headers=tenant.headers
    )
    assert answered.status_code == 200, answered.text
    assert answered.json()["reply"] == KNOWLEDGE[1]["answer"]
    assert answered.json()["handoff"] is False
    assert answered.json()["reason"] is None
    assert answered.json()["passages"][0]["question"] == KNOWLEDGE[1]["question"]

    unknown = await client.post(
        f"{API}/ai-agents/{created['id']}/test", json={"question": "do you sell bicycles?"}, headers=tenant.headers
    )
    assert unknown.json()["handoff"] is True
    assert unknown.json()["reason"] == "low_confidence"
    assert unknown.json()["reply"] == created["handoff"]["message"]

    person = await client.post(
        f"{API}/ai-agents/{created['id']}/test", json={"question": "Let me talk to a human"}, headers=tenant.headers
    )
    assert (person.json()["handoff"], person.json()["reason"]) == (True, "keyword")

    hello = await client.post(f"{API}/ai-agents/{created['id']}/test", json={"question": "Hi!"}, headers=tenant.headers)
    assert hello.json()["handoff"] is False
    assert "Asha Bot" in hello.json()["reply"]

    messages = await client.get(f"{API}/messages", headers=tenant.headers)
    assert messages.json()["data"] == []
    assert_error(
        await client.post(f"{API}/ai-agents/{created['id']}/test", json={"question": ""}, headers=tenant.headers), 400
    )


async def test_scopes_guard_reading_and_writing(client, runtime):
    reader = await make_tenant(runtime, "Readers", scopes=["ai_agents:read"])
    none = await make_tenant(runtime, "Nobody", scopes=["contacts:read"])

    assert_error(await client.post(f"{API}/ai-agents", json=agent_body(), headers=reader.headers), 403)
    assert (await client.get(f"{API}/ai-agents", headers=reader.headers)).status_code == 200
    assert_error(await client.get(f"{API}/ai-agents", headers=none.headers), 403)


def pdf_with_text(text: str) -> bytes:
    """A one-page PDF whose page shows `text` (built by hand: pypdf reads PDFs, it doesn't typeset them)."""
    stream = f"BT /F1 12 Tf 72 720 Td ({text}) Tj ET".encode()
    return pdf_of(
        [
            b"<< /Type /Catalog /Pages 2 0 R >>",
            b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
            b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R"
            b" /Resources << /Font << /F1 5 0 R >> >> >>",
            b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream",
            b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
        ]
    )


def pdf_of(objects: list[bytes], *, trailer: bytes = b"") -> bytes:
    """A PDF of `objects` (numbered from 1, the first the catalog) with a correct cross-reference table."""
    out = io.BytesIO()
    out.write(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(out.tell())
        out.write(b"%d 0 obj\n" % number + body + b"\nendobj\n")
    xref = out.tell()
    out.write(b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1))
    for offset in offsets:
        out.write(b"%010d 00000 n \n" % offset)
    out.write(b"trailer\n<< /Size %d /Root 1 0 R %s>>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, trailer, xref))
    return out.getvalue()


# A text stream whose /ToUnicode map claims a range of 2**40 codes: pypdf stops at its own limit
# (LimitReachedError, a PyPdfError that isn't a PdfReadError).
CORRUPT_TO_UNICODE = pdf_of(
    [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /Contents 4 0 R /Resources << /Font << /F1 5 0 R >> >> >>",
        b"<< /Length 26 >>\nstream\nBT /F1 12 Tf (Hello) Tj ET\nendstream",
        b"<< /Type /Font /Subtype /Type0 /BaseFont /X /ToUnicode 6 0 R /DescendantFonts 8 >>",
        b"<< /Length 64 >>\nstream\nbegincmap 1 beginbfrange <00> <FFFFFFFFFF> <0041> endbfrange endcmap\nendstream",
    ]
)
# Encrypted with a scheme pypdf doesn't know: it raises NotImplementedError.
UNKNOWN_ENCRYPTION = pdf_of(
    [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R >>",
        b"<< /Filter /Standard /V 9 /R 9 /O (x) /U (y) /P -1 >>",
    ],
    trailer=b"/Encrypt 4 0 R /ID [(a)(b)] ",
)


@pytest.mark.parametrize(
    ("pdf", "fragment"),
    [
        (CORRUPT_TO_UNICODE, "could not be read as a PDF"),
        (UNKNOWN_ENCRYPTION, "could not be read as a PDF"),
        (b"%PDF-1.7\n" + bytes(range(256)) * 4, "could not be read as a PDF"),
    ],
)
async def test_a_corrupt_pdf_is_a_400_and_changes_nothing(client, tenant, runtime, pdf, fragment):
    created = await create_agent(client, tenant)

    response = await client.post(
        f"{API}/ai-agents/{created['id']}/documents",
        files={"file": ("broken.pdf", pdf, "application/pdf")},
        headers=tenant.headers,
    )

    body = assert_error(response, 400, "unreadable_document")
    assert fragment in body["error"]
    assert (await client.get(f"{API}/ai-agents/{created['id']}", headers=tenant.headers)).json()["documents"] == []


async def test_a_document_with_more_text_than_the_limit_is_refused_naming_it(client, tenant, runtime, monkeypatch):
    monkeypatch.setattr(documents, "MAX_DOCUMENT_CHARACTERS", 30)
    created = await create_agent(client, tenant)
    long_docx = docx.Document()
    long_docx.add_paragraph("Warranty: every appliance has a two-year warranty.")
    buffer = io.BytesIO()
    long_docx.save(buffer)

    for name, data, kind in [
        ("long.pdf", pdf_with_text("Gift wrapping costs 50 rupees per parcel."), "application/pdf"),
        ("long.docx", buffer.getvalue(), documents.DOCX),
    ]:
        response = await client.post(
            f"{API}/ai-agents/{created['id']}/documents", files={"file": (name, data, kind)}, headers=tenant.headers
        )
        body = assert_error(response, 400, "unreadable_document")
        assert "more than 30 characters" in body["error"], body

    fits = await client.post(
        f"{API}/ai-agents/{created['id']}/documents",
        files={"file": ("short.pdf", pdf_with_text("Wrapping: 50 rupees."), "application/pdf")},
        headers=tenant.headers,
    )
    assert fits.status_code == 201, fits.text
