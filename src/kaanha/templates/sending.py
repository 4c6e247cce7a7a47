"""Whether a send gives each part of a template exactly the parameters it needs, and the text it will show.

Meta refuses a template send whose parameters don't fit (132000 wrong count, 132012 wrong kind, 131008
missing), but only after the message was queued; checking here answers the caller at once with what to fix.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from kaanha.errors import InvalidRequest
from kaanha.models import Template
from kaanha.templates.components import (
    MEDIA_FORMATS,
    VARIABLE,
    buttons,
    header_format,
    kind_of,
    part,
    text_of,
    variables,
)

BODY_PARAMETER_TYPES = ("text", "currency", "date_time")
# Meta refuses parameter text with line breaks, tabs or more than four spaces in a row (error 132018).
_UNSENDABLE_TEXT = re.compile(r"[\n\t]| {5,}")
BODY_TEXT_MAX = 1024
HEADER_TEXT_MAX = 60
# What a button needs at send time, by the button's type: the `sub_type` and the parameter's type.
_BUTTON_PARAMETERS = {
    "URL": ("url", "text"),
    "OTP": ("url", "text"),  # an authentication template's code button takes the code as a URL parameter
    "QUICK_REPLY": ("quick_reply", "payload"),
    "COPY_CODE": ("copy_code", "coupon_code"),
}


class TemplateParametersMismatch(InvalidRequest):
    code = "template_parameters_mismatch"


@dataclass
class _Given:
    """A send's components by part: each part's parameters, buttons by index with their sub_type."""

    header: list[dict[str, Any]] = field(default_factory=list)
    body: list[dict[str, Any]] = field(default_factory=list)
    buttons: dict[int, tuple[str, list[dict[str, Any]]]] = field(default_factory=dict)


def check_parameters(template: Template, components: list[dict[str, Any]]) -> None:
    """Each part of `template` gets exactly the parameters it needs, of the right kind, and nothing else."""
    check = _Check(template)
    given = check.collect(components)
    check.header(given.header)
    check.body(given.body)
    check.button_parameters(given.buttons)


def render_preview(template: Template, components: list[dict[str, Any]]) -> str:
    """The header text, body and footer the customer will read, variables filled with the send's values."""
    given = _given_leniently(components)
    named = template.parameter_format == "NAMED"
    texts = [
        _fill(text_of(template.components, "HEADER"), given.header, named),
        _fill(text_of(template.components, "BODY"), given.body, named),
        text_of(template.components, "FOOTER"),
    ]
    return "\n".join(text for text in texts if text)


class _Check:
    def __init__(self, template: Template) -> None:
        self.template = template
        self.name = template.name
        self.named = template.parameter_format == "NAMED"

    def fail(self, problem: str) -> TemplateParametersMismatch:
        return TemplateParametersMismatch(f"Template '{self.name}' {problem}")

    def collect(self, components: list[dict[str, Any]]) -> _Given:
        given = _Given()
        seen: set[str] = set()
        for index, component in enumerate(components):
            where = f"components[{index}]"
            if not isinstance(component, dict):
                raise self.fail(f"can't use {where}: each component is an object with a type and parameters")
            kind = str(component.get("type", "")).lower()
            parameters = component.get("parameters") or []
            if not isinstance(parameters, list) or not all(isinstance(p, dict) for p in parameters):
                raise self.fail(f"can't use {where}: its parameters must be a list of objects")
            if kind == "button":
                self._collect_button(component, parameters, where, given)
            elif kind in ("header", "body"):
                if kind in seen:
                    raise self.fail(f"is given its {kind} twice; give each part once")
                seen.add(kind)
                setattr(given, kind, parameters)
            elif kind in ("footer", "buttons") or part(self.template.components, kind.upper()) is None:
                # Other kinds the template has (a carousel) come with templates we only sync: Meta checks those.
                raise self.fail(
                    f"takes no '{kind}' component: fill its header, body, or a button (type \"button\" with its index)"
                )
        return given

    def _collect_button(
        self, component: dict[str, Any], parameters: list[dict[str, Any]], where: str, given: _Given
    ) -> None:
        index = component.get("index")
        if isinstance(index, str) and index.isdigit():
            index = int(index)
        if not isinstance(index, int) or isinstance(index, bool):
            raise self.fail(f'can\'t use {where}: a button component needs its "index" (0 for the first button)')
        if index in given.buttons:
            raise self.fail(f"is given button {index} twice")
        count = len(buttons(self.template.components))
        if not 0 <= index < count:
            has = f"buttons 0 to {count - 1}" if count else "no buttons"
            raise self.fail(f"has no button {index} (it has {has})")
        given.buttons[index] = (str(component.get("sub_type", "")).lower(), parameters)

    # --- header ---------------------------------------------------------------------------------------

    def header(self, given: list[dict[str, Any]]) -> None:
        header_kind = header_format(self.template.components)
        if header_kind == "TEXT":
            self._texts("header", variables(text_of(self.template.components, "HEADER")), given, HEADER_TEXT_MAX)
        elif header_kind in MEDIA_FORMATS:
            self._media_header(str(header_kind), given)
        elif header_kind == "LOCATION":
            self._location_header(given)
        elif header_kind is None and given:
            raise self.fail("has no header: leave the header component out")

    def _media_header(self, header_kind: str, given: list[dict[str, Any]]) -> None:
        kind = header_kind.lower()
        wanted = f'give a parameter {{"type": "{kind}", "{kind}": {{"link"|"id": ...}}}}'
        if len(given) != 1 or str(given[0].get("type", "")).lower() != kind:
            raise self.fail(f"header is {header_kind}: {wanted}")
        media = given[0].get(kind)
        if not isinstance(media, dict) or not any(_filled(media.get(key)) for key in ("link", "id")):
            raise self.fail(f"header is {header_kind}: {wanted}")
        link = media.get("link")
        if link is not None and not (_filled(link) and re.match(r"https?://", str(link))):
            raise self.fail(f"header {kind} link must be an http(s) address")

    def _location_header(self, given: list[dict[str, Any]]) -> None:
        location = given[0].get("location") if len(given) == 1 else None
        if not (
            isinstance(location, dict)
            and str(given[0].get("type", "")).lower() == "location"
            and all(isinstance(location.get(key), int | float) for key in ("latitude", "longitude"))
        ):
            raise self.fail(
                'header is LOCATION: give a parameter {"type": "location", "location": {"latitude": ..., '
                '"longitude": ..., "name": ..., "address": ...}}'
            )

    # --- body -----------------------------------------------------------------------------------------

    def body(self, given: list[dict[str, Any]]) -> None:
        self._texts("body", variables(text_of(self.template.components, "BODY")), given, BODY_TEXT_MAX)

    def _texts(self, where: str, wanted: list[str], given: list[dict[str, Any]], limit: int) -> None:
        """The parameters of a text part (body, text header): one per variable, by name for NAMED templates."""
        if len(given) != len(wanted):
            if not wanted:
                raise self.fail(f"{where} takes no parameters, got {len(given)}")
            listed = ", ".join(f"{{{{{name}}}}}" for name in wanted)
            plural = "s" if len(wanted) > 1 else ""
            raise self.fail(f"{where} needs {len(wanted)} parameter{plural} ({listed}), got {len(given)}")
        for position, parameter in enumerate(given):
            self._value(f"{where} parameter {position + 1}", parameter, allowed=_types_for(where))
        self._names(where, wanted, given)
        filled = _fill(text_of(self.template.components, where.upper()), given, self.named)
        if len(filled) > limit:
            raise self.fail(f"{where} would be {len(filled):,} characters once filled; WhatsApp allows {limit:,}")

    def _names(self, where: str, wanted: list[str], given: list[dict[str, Any]]) -> None:
        names = [parameter.get("parameter_name") for parameter in given]
        if not self.named:
            if any(name is not None for name in names):
                raise self.fail(f"{where} takes its parameters in order: parameter_name is for NAMED templates")
            return
        if sorted(map(str, names)) != sorted(wanted):
            missing = [name for name in wanted if name not in names]
            detail = f"missing {', '.join(missing)}" if missing else f"it takes {', '.join(wanted)}"
            raise self.fail(f"{where} parameters need a parameter_name for each variable ({detail})")

    def _value(self, where: str, parameter: dict[str, Any], *, allowed: tuple[str, ...]) -> None:
        kind = str(parameter.get("type", "")).lower()
        if kind not in allowed:
            raise self.fail(f"{where} must be of type {' or '.join(allowed)}, not '{kind or 'missing'}'")
        if kind == "text":
            text = parameter.get("text")
            if not _filled(text):
                raise self.fail(f'{where} needs its value: {{"type": "text", "text": "..."}}')
            if _UNSENDABLE_TEXT.search(str(text)):
                raise self.fail(f"{where} can't have line breaks, tabs or more than four spaces in a row")
        elif kind == "currency":
            currency = parameter.get("currency")
            if not isinstance(currency, dict) or not all(
                key in currency for key in ("fallback_value", "code", "amount_1000")
            ):
                raise self.fail(f"{where} currency needs fallback_value, code and amount_1000")
        elif kind == "date_time":
            date_time = parameter.get("date_time")
            if not isinstance(date_time, dict) or not _filled(date_time.get("fallback_value")):
                raise self.fail(f'{where} needs {{"date_time": {{"fallback_value": "..."}}}}')

    # --- buttons --------------------------------------------------------------------------------------

    def button_parameters(self, given: dict[int, tuple[str, list[dict[str, Any]]]]) -> None:
        for index, button in enumerate(buttons(self.template.components)):
            sub_type, parameters = given.get(index, ("", []))
            self._button(index, button, sub_type, parameters)

    def _button(self, index: int, button: dict[str, Any], sub_type: str, parameters: list[dict[str, Any]]) -> None:
        kind = kind_of(button)
        if kind not in _BUTTON_PARAMETERS and kind != "PHONE_NUMBER":
            return  # a kind we only sync (a flow, a catalog): Meta checks it
        label = f"button {index} ({kind})"
        needs = _button_needs(button)
        if needs is None:
            if parameters:
                raise self.fail(f"{label} takes no parameters")
            return
        wanted_sub_type, parameter_type = _BUTTON_PARAMETERS[kind]
        example = json.dumps(_button_example(index, wanted_sub_type, parameter_type))
        if not parameters:
            if needs == "required":
                what = "its URL variable" if wanted_sub_type == "url" else f"its {parameter_type}"
                raise self.fail(f"{label} needs {what}: give {example}")
            return
        value = parameters[0]
        if (
            sub_type != wanted_sub_type
            or len(parameters) != 1
            or str(value.get("type", "")).lower() != parameter_type
            or not _filled(value.get(parameter_type))
        ):
            raise self.fail(f"{label} takes one parameter: give {example}")


def _button_needs(button: dict[str, Any]) -> str | None:
    """Whether a template button needs a parameter at send time: required, optional (a payload), or None."""
    kind = kind_of(button)
    if kind == "URL":
        return "required" if variables(button.get("url")) else None
    if kind in ("OTP", "COPY_CODE"):
        return "required"
    return "optional" if kind == "QUICK_REPLY" else None


def _button_example(index: int, sub_type: str, parameter_type: str) -> dict[str, Any]:
    value = "..." if parameter_type != "coupon_code" else "CODE10"
    return {
        "type": "button",
        "sub_type": sub_type,
        "index": str(index),
        "parameters": [{"type": parameter_type, parameter_type: value}],
    }


def _types_for(where: str) -> tuple[str, ...]:
    # Meta's header text takes text only; the body also takes currency and date_time.
    return BODY_PARAMETER_TYPES if where == "body" else ("text",)


def _filled(value: Any) -> bool:
    return isinstance(value, str) and bool(value.strip())


def _given_leniently(components: list[dict[str, Any]]) -> _Given:
    given = _Given()
    for component in components:
        kind = str(component.get("type", "")).lower() if isinstance(component, dict) else ""
        parameters = component.get("parameters") if kind in ("header", "body") else None
        if isinstance(parameters, list):
            setattr(given, kind, [p for p in parameters if isinstance(p, dict)])
    return given


def _display(parameter: dict[str, Any]) -> str:
    kind = str(parameter.get("type", "text")).lower()
    if kind == "text":
        return str(parameter.get("text", ""))
    value = parameter.get(kind)
    return str(value.get("fallback_value", "")) if isinstance(value, dict) else ""


def _fill(text: str, parameters: list[dict[str, Any]], named: bool) -> str:
    """`text` with each variable replaced by its parameter's value (by position, or by name when NAMED)."""
    if named:
        values = {str(p.get("parameter_name")): _display(p) for p in parameters}
    else:
        values = {str(position + 1): _display(p) for position, p in enumerate(parameters)}

    def fill(match: re.Match[str]) -> str:
        return values.get(match.group(1), match.group(0))

    return VARIABLE.sub(fill, text)
