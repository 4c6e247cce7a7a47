"""Documents as knowledge: text taken out of PDF and DOCX files, and any text split into passages."""

from __future__ import annotations

import io
import re

import docx
from pypdf import PdfReader
from pypdf.errors import PyPdfError

from kaanha.ai_agents.schemas import MAX_DOCUMENT_CHARACTERS
from kaanha.errors import InvalidRequest

PDF = "application/pdf"
DOCX = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
# A passage is about a paragraph: long enough to hold an answer, short enough to be about one thing.
PASSAGE_CHARACTERS = 700


class UnreadableDocument(InvalidRequest):
    code = "unreadable_document"


def extract_text(data: bytes, *, mime_type: str, name: str) -> tuple[str, str]:
    """(source, text) of an uploaded PDF or DOCX; 400 for other files, broken ones, and ones without text.

    Also 400 past MAX_DOCUMENT_CHARACTERS of text, the limit of a document given as text.
    """
    if mime_type == PDF:
        source = "pdf"
        try:
            text = _pdf_text(data, name)
        except UnreadableDocument:
            raise
        except PyPdfError as error:
            raise UnreadableDocument(f"'{name}' could not be read as a PDF: {str(error)[:200]}") from error
        except Exception as error:  # pypdf raises many kinds (RecursionError too) for a broken or hostile file
            raise UnreadableDocument(f"'{name}' could not be read as a PDF ({type(error).__name__})") from error
    elif mime_type == DOCX:
        source = "docx"
        try:
            document = docx.Document(io.BytesIO(data))
            text = "\n\n".join(paragraph.text for paragraph in document.paragraphs)
        except Exception as error:  # python-docx raises many kinds for a broken file
            raise UnreadableDocument(f"'{name}' could not be read as a DOCX file") from error
        _check_length(len(text), name)
    else:
        raise UnreadableDocument(f"'{name}' is {mime_type}; documents must be PDF or DOCX, or given as text")
    if not text.strip():
        raise UnreadableDocument(f"'{name}' has no text to learn from (a scanned PDF needs text recognition first)")
    return source, text


def _pdf_text(data: bytes, name: str) -> str:
    # Page by page, stopping at the limit: a long PDF is refused without reading all of it.
    parts: list[str] = []
    length = 0
    for page in PdfReader(io.BytesIO(data)).pages:
        parts.append(page.extract_text() or "")
        length += len(parts[-1]) + 2
        _check_length(length, name)
    return "\n\n".join(parts)


def _check_length(characters: int, name: str) -> None:
    # Refused rather than cut: an agent that silently knows only the first part of a document would
    # hand over (or answer) without anyone knowing why. Split it into several documents instead.
    if characters > MAX_DOCUMENT_CHARACTERS:
        raise UnreadableDocument(
            f"'{name}' has more than {MAX_DOCUMENT_CHARACTERS:,} characters of text, the most one document may "
            "have; split it into smaller documents"
        )


def split_passages(text: str) -> list[str]:
    """Paragraphs, joined while short and cut at sentence ends while long."""
    paragraphs = [re.sub(r"\s+", " ", part).strip() for part in re.split(r"\n\s*\n", text)]
    passages: list[str] = []
    current = ""
    for paragraph in filter(None, paragraphs):
        for piece in _sentences_within(paragraph):
            if current and len(current) + 1 + len(piece) > PASSAGE_CHARACTERS:
                passages.append(current)
                current = piece
            else:
                current = f"{current} {piece}".strip()
    if current:
        passages.append(current)
    return passages


def _sentences_within(paragraph: str) -> list[str]:
    if len(paragraph) <= PASSAGE_CHARACTERS:
        return [paragraph]
    pieces: list[str] = []
    current = ""
    for sentence in re.split(r"(?<=[.!?])\s+", paragraph):
        while len(sentence) > PASSAGE_CHARACTERS:  # a "sentence" with no end: cut it
            pieces.append(sentence[:PASSAGE_CHARACTERS])
            sentence = sentence[PASSAGE_CHARACTERS:]
        if current and len(current) + 1 + len(sentence) > PASSAGE_CHARACTERS:
            pieces.append(current)
            current = sentence
        else:
            current = f"{current} {sentence}".strip()
    if current:
        pieces.append(current)
    return pieces
