"""Meta's rules for creating a template: its name, language and category, and what each component may hold.

The checks are those of `POST /{waba-id}/message_templates`, so a template we accept is one Meta takes
for review, and the sandbox refuses what the Cloud API would. Every error names the field at fault.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from kaanha.errors import InvalidRequest
from kaanha.kit.phone import InvalidPhoneNumber, normalize_phone
from kaanha.templates.components import MEDIA_FORMATS, NAMED_NAME, POSITIONAL_NAME, VARIABLE, kind_of, variables

NAME = re.compile(r"[a-z0-9_]{1,512}")
LANGUAGE = re.compile(r"[a-z]{2,3}(_[A-Z][A-Za-z]{1,3})?")
CATEGORIES = ("MARKETING", "UTILITY", "AUTHENTICATION")
PARAMETER_FORMATS = ("POSITIONAL", "NAMED")
HEADER_FORMATS = ("TEXT", *MEDIA_FORMATS, "LOCATION")
BUTTON_TYPES = ("QUICK_REPLY", "URL", "PHONE_NUMBER")

# Meta's limits on a template's parts (characters, and buttons per template).
HEADER_TEXT_MAX = 60
BODY_TEXT_MAX = 1024
FOOTER_TEXT_MAX = 60
BUTTON_TEXT_MAX = 25
URL_MAX = 2000
MAX_BUTTONS = 10
MAX_URL_BUTTONS = 2
MAX_PHONE_BUTTONS = 1

_FIELDS = {
    "HEADER": {"type", "format", "text", "example"},
    "BODY": {"type", "text", "example"},
    "FOOTER": {"type", "text"},
    "BUTTONS": {"type", "buttons"},
}
_BUTTON_FIELDS = {
    "QUICK_REPLY": {"type", "text"},
    "URL": {"type", "text", "url", "example"},
    "PHONE_NUMBER": {"type", "text", "phone_number"},
}


class InvalidTemplate(InvalidRequest):
    code = "invalid_template"


@dataclass(frozen=True)
class NewTemplate:
    """A template that passed Meta's creation rules, its components normalised to Meta's upper-case types."""

    name: str
    language: str
    category: str
    parameter_format: str
    components: list[dict[str, Any]]

    def graph_body(self) -> dict[str, Any]:
        """The body of `POST /{waba-id}/message_templates`."""
        return {
            "name": self.name,
            "language": self.language,
            "category": self.category,
            "parameter_format": self.parameter_format,
            "components": self.components,
        }


def check_new_template(
    *, name: str, language: str, category: str, parameter_format: str | None, components: list[Any]
) -> NewTemplate:
    """The template as Meta would take it, or InvalidTemplate naming the first field at fault."""
    if not NAME.fullmatch(name):
        raise InvalidTemplate("name must be 1 to 512 lowercase letters, digits or underscores, such as order_update")
    if not LANGUAGE.fullmatch(language):
        raise InvalidTemplate(f"language '{language}' is not a language code such as en or en_US")
    category = _one_of(category, CATEGORIES, "category")
    parameter_format = _one_of(parameter_format or "POSITIONAL", PARAMETER_FORMATS, "parameterFormat")
    checked = _Checker(parameter_format).components(components)
    return NewTemplate(name, language, category, parameter_format, checked)


def _one_of(value: str, allowed: tuple[str, ...], field: str) -> str:
    if value.upper() not in allowed:
        raise InvalidTemplate(f"{field} must be one of {', '.join(allowed)}, not '{value}'")
    return value.upper()


class _Checker:
    """The component checks, for one parameter format (POSITIONAL {{1}} or NAMED {{first_name}})."""

    def __init__(self, parameter_format: str) -> None:
        self.named = parameter_format == "NAMED"

    def components(self, components: list[Any]) -> list[dict[str, Any]]:
        if not components:
            raise InvalidTemplate("components must hold at least a BODY")
        kinds = []
        checked = []
        for index, component in enumerate(components):
            where = f"components[{index}]"
            if not isinstance(component, dict):
                raise InvalidTemplate(f"{where} must be an object")
            kind = kind_of(component)
            if kind not in _FIELDS:
                raise InvalidTemplate(f"{where}.type must be HEADER, BODY, FOOTER or BUTTONS")
            if kind in kinds:
                raise InvalidTemplate(f"{where}: a template has at most one {kind}")
            where = f"{where} ({kind})"
            _only_fields(component, _FIELDS[kind], where)
            kinds.append(kind)
            check = {"HEADER": self.header, "BODY": self.body, "FOOTER": self.footer, "BUTTONS": self.buttons}[kind]
            checked.append(check({**component, "type": kind}, where))
        if "BODY" not in kinds:
            raise InvalidTemplate("components must include a BODY")
        return checked

    def header(self, header: dict[str, Any], where: str) -> dict[str, Any]:
        header_format = str(header.get("format", "")).upper()
        if header_format not in HEADER_FORMATS:
            raise InvalidTemplate(f"{where}.format must be one of {', '.join(HEADER_FORMATS)}")
        header = {**header, "format": header_format}
        if header_format != "TEXT":
            if "text" in header:
                raise InvalidTemplate(f"{where}: a {header_format} header has no text")
            return self._media_example(header, where)
        text = _text(header.get("text"), HEADER_TEXT_MAX, f"{where}.text")
        if "\n" in text:
            raise InvalidTemplate(f"{where}.text: a header is one line, without line breaks")
        names = self._variables(text, f"{where}.text")
        if len(names) > 1:
            raise InvalidTemplate(f"{where}.text: a text header has at most one variable, this one has {len(names)}")
        self._examples(header, names, "header", where)
        return header

    def body(self, body: dict[str, Any], where: str) -> dict[str, Any]:
        text = _text(body.get("text"), BODY_TEXT_MAX, f"{where}.text")
        self._examples(body, self._variables(text, f"{where}.text"), "body", where)
        return body

    def footer(self, footer: dict[str, Any], where: str) -> dict[str, Any]:
        text = _text(footer.get("text"), FOOTER_TEXT_MAX, f"{where}.text")
        if VARIABLE.search(text):
            raise InvalidTemplate(f"{where}.text: a footer can't have variables")
        return footer

    def buttons(self, holder: dict[str, Any], where: str) -> dict[str, Any]:
        found = holder.get("buttons")
        if not isinstance(found, list) or not 1 <= len(found) <= MAX_BUTTONS:
            raise InvalidTemplate(f"{where}.buttons must be a list of 1 to {MAX_BUTTONS} buttons")
        checked = [_button(button, f"{where}.buttons[{index}]") for index, button in enumerate(found)]
        kinds = [button["type"] for button in checked]
        if kinds.count("URL") > MAX_URL_BUTTONS:
            raise InvalidTemplate(f"{where}: at most {MAX_URL_BUTTONS} URL buttons, this has {kinds.count('URL')}")
        if kinds.count("PHONE_NUMBER") > MAX_PHONE_BUTTONS:
            raise InvalidTemplate(f"{where}: at most {MAX_PHONE_BUTTONS} PHONE_NUMBER button")
        quick = [index for index, kind in enumerate(kinds) if kind == "QUICK_REPLY"]
        if quick and quick[-1] - quick[0] + 1 != len(quick):
            # Meta shows quick replies as one group: they can't be mixed in between URL or phone buttons.
            raise InvalidTemplate(f"{where}: QUICK_REPLY buttons must come together, before or after the others")
        return {**holder, "buttons": checked}

    def _variables(self, text: str, where: str) -> list[str]:
        rest = VARIABLE.sub("", text)
        if "{{" in rest or "}}" in rest:
            raise InvalidTemplate(
                f"{where}: a variable is written {{{{1}}}} or {{{{name}}}}, with two braces each side"
            )
        names = variables(text)
        if self.named:
            for name in names:
                if not NAMED_NAME.fullmatch(name):
                    raise InvalidTemplate(
                        f"{where}: '{{{{{name}}}}}' is not a named variable; parameterFormat NAMED takes lowercase "
                        "names such as {{first_name}}"
                    )
            return names
        for name in names:
            if not POSITIONAL_NAME.fullmatch(name):
                raise InvalidTemplate(
                    f"{where}: '{{{{{name}}}}}' is not a numbered variable; use {{{{1}}}}, {{{{2}}}}… or set "
                    "parameterFormat to NAMED"
                )
        if sorted(int(name) for name in names) != list(range(1, len(names) + 1)):
            raise InvalidTemplate(f"{where}: numbered variables must run {{{{1}}}}, {{{{2}}}}… without gaps")
        return names

    def _examples(self, component: dict[str, Any], names: list[str], part: str, where: str) -> None:
        """Meta reviews a template with sample values: every variable needs one."""
        example = component.get("example")
        if not names:
            if example is not None:
                raise InvalidTemplate(f"{where}.example: the text has no variables, so it takes no example")
            return
        key = f"{part}_text_named_params" if self.named else f"{part}_text"
        if not isinstance(example, dict) or set(example) != {key}:
            raise InvalidTemplate(f'{where}.example must be {{"{key}": ...}} with a sample value for each variable')
        values = example[key]
        if self.named:
            _named_examples(values, names, f"{where}.example.{key}")
            return
        if part == "body":  # Meta nests the body's samples in one more list
            values = values[0] if isinstance(values, list) and len(values) == 1 else None
        if not isinstance(values, list) or len(values) != len(names) or not all(_filled(v) for v in values):
            sample = '[["Asha", "#1042"]]' if part == "body" else '["Asha"]'
            raise InvalidTemplate(
                f"{where}.example.{key} must give {len(names)} sample value(s), one per variable, like {sample}"
            )

    @staticmethod
    def _media_example(header: dict[str, Any], where: str) -> dict[str, Any]:
        # Meta wants an uploaded sample (a handle from its resumable upload); ours may leave it out.
        example = header.get("example")
        if example is None:
            return header
        handles = example.get("header_handle") if isinstance(example, dict) else None
        if header["format"] == "LOCATION" or set(example) != {"header_handle"}:
            raise InvalidTemplate(f'{where}.example may only be {{"header_handle": ["<handle>"]}}')
        if not isinstance(handles, list) or len(handles) != 1 or not _filled(handles[0]):
            raise InvalidTemplate(f"{where}.example.header_handle must be a list of one upload handle")
        return header


def _only_fields(component: dict[str, Any], allowed: set[str], where: str) -> None:
    unknown = sorted(set(component) - allowed)
    if unknown:
        raise InvalidTemplate(f"{where}: '{unknown[0]}' is not a field here; it takes {', '.join(sorted(allowed))}")


def _text(value: Any, limit: int, where: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise InvalidTemplate(f"{where} is required: 1 to {limit:,} characters")
    if len(value) > limit:
        raise InvalidTemplate(f"{where} is {len(value):,} characters; WhatsApp allows at most {limit:,}")
    return value


def _filled(value: Any) -> bool:
    return isinstance(value, str) and bool(value.strip())


def _named_examples(values: Any, names: list[str], where: str) -> None:
    items = values if isinstance(values, list) else []
    given = [item.get("param_name") for item in items if isinstance(item, dict) and _filled(item.get("example"))]
    if len(items) != len(names) or sorted(map(str, given)) != sorted(names):
        wanted = ", ".join(f'{{"param_name": "{name}", "example": "..."}}' for name in names)
        raise InvalidTemplate(f"{where} must give one sample per variable: [{wanted}]")


def _button(button: Any, where: str) -> dict[str, Any]:
    if not isinstance(button, dict):
        raise InvalidTemplate(f"{where} must be an object")
    kind = kind_of(button)
    if kind not in BUTTON_TYPES:
        raise InvalidTemplate(f"{where}.type must be one of {', '.join(BUTTON_TYPES)}")
    where = f"{where} ({kind})"
    _only_fields(button, _BUTTON_FIELDS[kind], where)
    text = _text(button.get("text"), BUTTON_TEXT_MAX, f"{where}.text")
    if VARIABLE.search(text):
        raise InvalidTemplate(f"{where}.text: a button's text can't have variables")
    checked = {**button, "type": kind}
    if kind == "URL":
        _url_button(checked, where)
    elif kind == "PHONE_NUMBER":
        checked["phone_number"] = _phone(button.get("phone_number"), f"{where}.phone_number")
    return checked


def _url_button(button: dict[str, Any], where: str) -> None:
    url = button.get("url")
    if not isinstance(url, str) or not re.match(r"https?://[^/\s{}]+", url) or len(url) > URL_MAX:
        raise InvalidTemplate(f"{where}.url must be an http(s) address of at most {URL_MAX} characters")
    names = VARIABLE.findall(url)
    example = button.get("example")
    if not names:
        if example is not None:
            raise InvalidTemplate(f"{where}.example: the URL has no variable, so it takes no example")
        return
    if len(names) > 1 or names[0] != "1" or not url.endswith("}}"):
        # Meta appends the send's value to a fixed address: one {{1}}, at the very end.
        raise InvalidTemplate(f"{where}.url may have one variable, {{{{1}}}}, and only at its end")
    if isinstance(example, str):
        example = [example]
    if not isinstance(example, list) or len(example) != 1 or not _filled(example[0]):
        raise InvalidTemplate(f'{where}.example must be ["<a full sample URL>"] for the URL\'s variable')
    button["example"] = example


def _phone(value: Any, where: str) -> str:
    if not isinstance(value, str) or not value.strip().startswith("+"):
        raise InvalidTemplate(f"{where} must be a phone number with its country code, such as +919876543210")
    try:
        return normalize_phone(value, default_region="ZZ")
    except InvalidPhoneNumber as error:
        raise InvalidTemplate(f"{where}: {error.message}") from None
