"""Message templates: the checks of `POST /{waba}/message_templates`, and the parameter check of a template send.

Placeholders are `{{1}}`, `{{2}}`… (POSITIONAL, numbered from 1 without gaps) or `{{first_name}}` (NAMED).
Meta wants example values for every placeholder at creation, and at send time exactly one parameter per
placeholder of the body and of a text header (132000), and a parameter of the header's type for a media header
(132012).
"""

from __future__ import annotations

import re
import threading
from collections import defaultdict
from collections.abc import Callable
from typing import Any

from kaanha.testing.fake_graph.errors import GraphError, invalid
from kaanha.testing.fake_graph.models import Template, TemplateSpec

PLACEHOLDER = re.compile(r"\{\{\s*([^{}\s]+)\s*\}\}")
NAME = re.compile(r"[a-z0-9_]{1,512}")
LANGUAGE = re.compile(r"[a-z]{2,3}(_[A-Z][A-Za-z]{1,3})?")
NAMED_PARAMETER = re.compile(r"[a-z][a-z0-9_]*")
CATEGORIES = frozenset({"MARKETING", "UTILITY", "AUTHENTICATION"})
PARAMETER_FORMATS = frozenset({"POSITIONAL", "NAMED"})
COMPONENT_TYPES = frozenset({"HEADER", "BODY", "FOOTER", "BUTTONS"})
HEADER_FORMATS = frozenset({"TEXT", "IMAGE", "VIDEO", "DOCUMENT", "LOCATION"})
STATUSES = frozenset(
    {"APPROVED", "PENDING", "REJECTED", "PAUSED", "DISABLED", "FLAGGED", "IN_APPEAL", "LOCKED", "LIMIT_EXCEEDED"}
)


def placeholders(text: str) -> list[str]:
    """The distinct placeholder names of `text`, in order of first appearance."""
    return list(dict.fromkeys(PLACEHOLDER.findall(text)))


def check_new_template(body: Any) -> TemplateSpec:
    """Refuse (code 100) what Meta's template creation refuses; return the template to store."""
    if not isinstance(body, dict):
        raise invalid("The request body must be a JSON object.")
    name, language, category = body.get("name"), body.get("language"), body.get("category")
    if not isinstance(name, str) or not NAME.fullmatch(name):
        raise invalid("Param name must be 1 to 512 lowercase letters, digits or underscores.")
    if not isinstance(language, str) or not LANGUAGE.fullmatch(language):
        raise invalid("Param language must be a language code such as en or en_US.")
    if not isinstance(category, str) or category.upper() not in CATEGORIES:
        raise invalid(f"Param category must be one of {', '.join(sorted(CATEGORIES))}.")
    parameter_format = body.get("parameter_format", "POSITIONAL")
    if not isinstance(parameter_format, str) or parameter_format.upper() not in PARAMETER_FORMATS:
        raise invalid("Param parameter_format must be POSITIONAL or NAMED.")
    parameter_format = parameter_format.upper()
    components = _components(body.get("components"))
    body_params, header_params, header_format = _check_components(components, parameter_format, category.upper())
    return TemplateSpec(
        name, language, category.upper(), components, parameter_format, body_params, header_params, header_format
    )


def _components(value: Any) -> list[dict[str, Any]]:
    if not isinstance(value, list) or not value or not all(isinstance(item, dict) for item in value):
        raise invalid("Param components must be a non-empty array of objects.")
    kinds = [str(component.get("type", "")).upper() for component in value]
    unknown = [kind for kind in kinds if kind not in COMPONENT_TYPES]
    if unknown:
        raise invalid(f"Component type {unknown[0]!r} is not one of HEADER, BODY, FOOTER, BUTTONS.")
    if kinds.count("BODY") != 1 or any(kinds.count(kind) > 1 for kind in COMPONENT_TYPES):
        raise invalid("A template needs exactly one BODY component and at most one of each other component.")
    return value


def _by_type(components: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {str(component["type"]).upper(): component for component in components}


def _check_components(
    components: list[dict[str, Any]], parameter_format: str, category: str
) -> tuple[list[str], list[str], str | None]:
    parts = _by_type(components)
    body = parts["BODY"]
    body_params = _check_text_part(body, "BODY", 1024, parameter_format, required=category != "AUTHENTICATION")
    header_params: list[str] = []
    header_format = None
    if "HEADER" in parts:
        header_format, header_params = _check_header(parts["HEADER"], parameter_format)
    if "FOOTER" in parts and _check_text_part(parts["FOOTER"], "FOOTER", 60, parameter_format, required=True):
        raise invalid("The FOOTER component cannot have variables.")
    if "BUTTONS" in parts:
        buttons = parts["BUTTONS"].get("buttons")
        if not isinstance(buttons, list) or not 1 <= len(buttons) <= 10:
            raise invalid("The BUTTONS component needs 1 to 10 buttons.")
    return body_params, header_params, header_format


def _check_header(header: dict[str, Any], parameter_format: str) -> tuple[str, list[str]]:
    header_format = str(header.get("format", "")).upper()
    if header_format not in HEADER_FORMATS:
        raise invalid(f"The HEADER format must be one of {', '.join(sorted(HEADER_FORMATS))}.")
    if header_format != "TEXT":
        return header_format, []
    params = _check_text_part(header, "HEADER", 60, parameter_format, required=True)
    if len(params) > 1:
        raise invalid("A text HEADER can have at most one variable.")
    return header_format, params


def _check_text_part(
    component: dict[str, Any], kind: str, max_len: int, parameter_format: str, *, required: bool
) -> list[str]:
    text = component.get("text")
    if text is None and not required:
        return []
    if not isinstance(text, str) or not text.strip() or len(text) > max_len:
        raise invalid(f"The {kind} component needs a text of 1 to {max_len} characters.")
    params = placeholders(text)
    _check_placeholder_names(params, kind, parameter_format)
    if params:
        _check_examples(component, params, kind, parameter_format)
    return params


def _check_placeholder_names(params: list[str], kind: str, parameter_format: str) -> None:
    if parameter_format == "POSITIONAL":
        if sorted(params, key=lambda p: int(p) if p.isdigit() else -1) != [str(n) for n in range(1, len(params) + 1)]:
            raise invalid(f"The {kind} variables must be {{{{1}}}}, {{{{2}}}}, … in sequence for POSITIONAL.")
    elif not all(NAMED_PARAMETER.fullmatch(param) for param in params):
        raise invalid(f"The {kind} variables must be lowercase names such as {{{{first_name}}}} for NAMED.")


def _check_examples(component: dict[str, Any], params: list[str], kind: str, parameter_format: str) -> None:
    """Meta refuses a template whose variables have no sample values."""
    example = component.get("example")
    prefix = kind.lower()
    if not isinstance(example, dict):
        raise invalid(f"The {kind} component has variables, so it needs example values.")
    if parameter_format == "NAMED":
        named = example.get(f"{prefix}_text_named_params")
        items = named if isinstance(named, list) else []
        names = {item.get("param_name") for item in items if isinstance(item, dict)}
        if names != set(params):
            raise invalid(f"Param example['{prefix}_text_named_params'] must give one example per variable.")
        return
    values = example.get(f"{prefix}_text")
    if kind == "BODY" and isinstance(values, list) and values:
        values = values[0]
    if not isinstance(values, list) or len(values) != len(params):
        raise invalid(f"Param example['{prefix}_text'] must give one example per variable.")


def check_send_parameters(spec: TemplateSpec, components: Any) -> None:
    """A template send's parameters must match the template's placeholders (132000) and header type (132012)."""
    given: dict[str, list[Any]] = {"header": [], "body": []}
    for component in components if isinstance(components, list) else []:
        kind = str(component.get("type", "")).lower()
        parameters = component.get("parameters")
        if kind in given and isinstance(parameters, list):
            given[kind].extend(parameters)
    if spec.header_format not in {None, "TEXT"}:
        _check_media_header(spec.header_format, given["header"])
    else:
        _check_count("header", spec.header_params, given["header"], spec.parameter_format)
    _check_count("body", spec.body_params, given["body"], spec.parameter_format)


def _check_count(part: str, expected: list[str], given: list[Any], parameter_format: str) -> None:
    if len(given) != len(expected):
        raise GraphError(
            132000,
            f"{part}: number of localizable_params ({len(given)}) does not match the expected number of params "
            f"({len(expected)})",
        )
    if parameter_format == "NAMED":
        names = {parameter.get("parameter_name") for parameter in given if isinstance(parameter, dict)}
        if names != set(expected):
            raise GraphError(132000, f"{part}: parameter names do not match the template's ({', '.join(expected)})")


def _check_media_header(header_format: str, given: list[Any]) -> None:
    received = given[0].get("type", "UNKNOWN") if len(given) == 1 and isinstance(given[0], dict) else "UNKNOWN"
    if str(received).upper() != header_format:
        raise GraphError(132012, f"header: Format mismatch, expected {header_format}, received {str(received).upper()}")


class TemplateStore:
    """Templates by WABA in creation order, indexed by (waba, name, language) so a send looks one up in O(1)."""

    def __init__(self, new_id: Callable[[], str]) -> None:
        self._new_id = new_id
        self._lock = threading.Lock()
        self._by_waba: dict[str, dict[str, Template]] = defaultdict(dict)
        self._index: dict[tuple[str, str, str], Template] = {}

    def add(self, waba_id: str, spec: TemplateSpec, status: str) -> Template:
        """Store a template; the same name and language twice in a WABA is Meta's subcode 2388024."""
        with self._lock:
            key = (waba_id, spec.name, spec.language)
            if key in self._index:
                raise _already_exists(spec.language)
            template = Template(self._new_id(), waba_id, spec, status)
            self._by_waba[waba_id][template.id] = template
            self._index[key] = template
        return template

    def find(self, waba_id: str, name: str, language: str) -> Template | None:
        return self._index.get((waba_id, name, language))

    def by_id(self, template_id: str) -> Template | None:
        for templates in list(self._by_waba.values()):
            if template_id in templates:
                return templates[template_id]
        return None

    def of_waba(self, waba_id: str) -> list[Template]:
        return list(self._by_waba.get(waba_id, {}).values())

    def delete(self, waba_id: str, name: str, template_id: str | None = None) -> None:
        """Delete every language of `name` (or only the one with `hsm_id`), as Graph does."""
        with self._lock:
            doomed = [
                template
                for template in self._by_waba.get(waba_id, {}).values()
                if template.spec.name == name and template_id in (None, template.id)
            ]
            if not doomed:
                raise GraphError(100, f"Message template {name!r} was not found.")
            for template in doomed:
                del self._by_waba[waba_id][template.id]
                del self._index[(waba_id, name, template.spec.language)]


def _already_exists(language: str) -> GraphError:
    return GraphError(
        100,
        f"There is already {language} content for this template. Create a new template and try again.",
        message="Invalid parameter",
        subcode=2388024,
        extra={
            "is_transient": False,
            "error_user_title": "Content in this language already exists",
            "error_user_msg": f"There is already {language} content for this template.",
        },
    )
