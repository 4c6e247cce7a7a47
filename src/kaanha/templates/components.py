"""Reading a template's components in Meta's shape: its parts, their variables and its buttons."""

from __future__ import annotations

import re
from typing import Any

# Any `{{...}}`; whether what is inside is a valid variable name is the creation rules' business.
VARIABLE = re.compile(r"\{\{\s*([^{}]*?)\s*\}\}")
POSITIONAL_NAME = re.compile(r"[1-9][0-9]*")
# Meta's named variables: lowercase letters, digits and underscores, starting with a letter.
NAMED_NAME = re.compile(r"[a-z][a-z0-9_]*")
MEDIA_FORMATS = ("IMAGE", "VIDEO", "DOCUMENT")


def variables(text: Any) -> list[str]:
    """The distinct variable names of `text` ("1", "first_name"), in order of first appearance."""
    if not isinstance(text, str):
        return []
    return list(dict.fromkeys(VARIABLE.findall(text)))


def kind_of(component: Any) -> str:
    """A component's (or button's) type in Meta's upper case; "" when it has none."""
    return str(component.get("type", "")).upper() if isinstance(component, dict) else ""


def part(components: list[dict[str, Any]] | None, kind: str) -> dict[str, Any] | None:
    """The template's HEADER, BODY, FOOTER or BUTTONS component, if it has one."""
    for component in components or []:
        if kind_of(component) == kind:
            return component
    return None


def header_format(components: list[dict[str, Any]] | None) -> str | None:
    header = part(components, "HEADER")
    return str(header.get("format", "TEXT")).upper() if header is not None else None


def buttons(components: list[dict[str, Any]] | None) -> list[dict[str, Any]]:
    holder = part(components, "BUTTONS")
    found = holder.get("buttons") if holder is not None else None
    return [button for button in found if isinstance(button, dict)] if isinstance(found, list) else []


def text_of(components: list[dict[str, Any]] | None, kind: str) -> str:
    """The text of a part ("" without one); a media header has none."""
    component = part(components, kind)
    if component is None or (kind == "HEADER" and header_format(components) != "TEXT"):
        return ""
    text = component.get("text")
    return text if isinstance(text, str) else ""
