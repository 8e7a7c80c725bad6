"""Configuration files, read strictly: one YAML loader, one way to validate, one error shape.

Every YAML file the platform reads goes through :func:`load_yaml`: PyYAML's safe loader, except that
a key given twice in one mapping is refused (PyYAML would silently keep the last value) and an
impossible date (``2026-02-30``) names its line. A file that configures a service is then validated
by a pydantic model (:class:`FileModel`: strict types, unknown keys refused) with :func:`parse`, and
every problem is reported as ``file: field: problem`` by a :class:`ConfigFileError`:

    reviewers.yaml: reviewers[2].role: 'nures' is not one of 'nurse', 'physician', 'adjuster', ...

The same wording is used for settings (:mod:`services.common.settings`), so an operator reads one
kind of message whatever was wrong.
"""

from __future__ import annotations

import datetime as dt
import json
import types
import typing
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, BeforeValidator, ConfigDict, StringConstraints, ValidationError
from pydantic_core import ErrorDetails

from services.common.errors import ConfigurationError

M = TypeVar("M", bound=BaseModel)
E = TypeVar("E", bound="ConfigFileError")

# -- the error -------------------------------------------------------------------------------------


class ConfigFileError(ConfigurationError):
    """Problems in one configuration file.

    ``str()`` is one ``file: field: problem`` line per problem (``file: problem`` when the problem
    is the whole file); ``field`` and ``problem`` are the first one's. An unknown key is reported
    before the others: it is usually the misspelling of a key that is then reported missing.
    """

    def __init__(self, path: Path | str, field: str, problem: str,
                 more: Sequence[tuple[str, str]] = ()) -> None:
        self.path = Path(path)
        self.field = field
        self.problem = problem
        self.problems: tuple[tuple[str, str], ...] = ((field, problem), *more)
        super().__init__("\n".join(problem_line(self.path.name, f, p) for f, p in self.problems))

    @classmethod
    def from_validation(cls: type[E], path: Path | str, error: ValidationError, model: type[BaseModel],
                        redact: bool = False) -> E:
        problems = describe_errors(error, model, redact)
        return cls(path, problems[0][0], problems[0][1], problems[1:])


def problem_line(where: str, field: str, problem: str) -> str:
    return f"{where}: {field}: {problem}" if field else f"{where}: {problem}"


# -- YAML ------------------------------------------------------------------------------------------


class StrictLoader(yaml.SafeLoader):
    """SafeLoader that refuses duplicate keys and names the line of an impossible date."""


def _mapping_without_duplicates(loader: StrictLoader, node: yaml.MappingNode) -> dict[Any, Any]:
    seen: set[Any] = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node)
        if not isinstance(key, typing.Hashable):
            continue  # construct_mapping refuses it with its own message
        if key in seen:
            raise yaml.constructor.ConstructorError(None, None, f"duplicate key {key!r}", key_node.start_mark)
        seen.add(key)
    return loader.construct_mapping(node)


def _timestamp(loader: StrictLoader, node: yaml.ScalarNode) -> dt.date:
    try:
        value: dt.date = loader.construct_yaml_timestamp(node)
    except ValueError as exc:  # PyYAML lets 2026-02-30 escape as a bare ValueError, without a line
        raise yaml.constructor.ConstructorError(None, None, f"{node.value!r} is not a date: {exc}",
                                                node.start_mark) from exc
    return value


StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _mapping_without_duplicates)
StrictLoader.add_constructor("tag:yaml.org,2002:timestamp", _timestamp)


def load_yaml(text: str) -> Any:
    """Parse one YAML document; raises yaml.YAMLError (duplicate keys and impossible dates included)."""
    return yaml.load(text, Loader=StrictLoader)  # noqa: S506 - a SafeLoader subclass


def yaml_problem(exc: yaml.YAMLError) -> str:
    """A one-line description of a YAML error, with its line and column when PyYAML knows them."""
    if isinstance(exc, yaml.MarkedYAMLError) and exc.problem:
        mark = exc.problem_mark
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark is not None else ""
        context = f"{exc.context}: " if exc.context else ""
        return f"{context}{exc.problem}{where}"
    return " ".join(str(exc).split())


def read_text(path: Path | str, error: Callable[[Path, str, str], ConfigFileError]) -> str:
    file = Path(path)
    try:
        return file.read_text(encoding="utf-8")
    except OSError as exc:
        raise error(file, "", f"cannot read: {exc.strerror or exc}") from exc
    except UnicodeDecodeError as exc:
        raise error(file, "", f"cannot read: not UTF-8 text ({exc.reason} at byte {exc.start})") from exc


def parse_yaml(path: Path | str, text: str, error: Callable[[Path, str, str], ConfigFileError]) -> Any:
    try:
        return load_yaml(text)
    except yaml.YAMLError as exc:
        raise error(Path(path), "", f"not valid YAML: {yaml_problem(exc)}") from exc


def read_yaml(path: Path | str, error: Callable[[Path, str, str], ConfigFileError] = ConfigFileError) -> Any:
    """The document of a YAML file; an unreadable file or invalid YAML raises ``error(path, "", problem)``."""
    return parse_yaml(path, read_text(path, error), error)


def canonical_json(document: object) -> bytes:
    """A parsed document's canonical JSON (sorted keys, no insignificant whitespace, dates as ISO
    text): what a content hash is taken of, so comments and layout do not change it."""
    def default(value: object) -> str:
        if isinstance(value, dt.date):
            return value.isoformat()
        raise TypeError(f"cannot hash a {type(value).__name__}")

    return json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=default).encode()


def load_json(text: str) -> Any:
    """Parse JSON, refusing a key given twice in one object (json.loads keeps the last one)."""
    def pairs(items: list[tuple[str, Any]]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key, value in items:
            if key in out:
                raise ValueError(f"duplicate key {key!r}")
            out[key] = value
        return out

    return json.loads(text, object_pairs_hook=pairs)


# -- models ----------------------------------------------------------------------------------------


class FileModel(BaseModel):
    """Base of the models of configuration files: strict types (YAML's, no coercion), unknown keys
    refused, immutable."""

    model_config = ConfigDict(strict=True, extra="forbid", frozen=True)


#: Non-empty text, surrounding blanks removed.
Text = typing.Annotated[str, StringConstraints(strip_whitespace=True, min_length=1)]


def _iso_date(value: object) -> object:
    if isinstance(value, dt.datetime):
        # pydantic turns a ValueError (not a TypeError) into a validation error naming the field.
        raise ValueError(f"{value.isoformat()!r} is a time; expected a date (YYYY-MM-DD)")  # noqa: TRY004
    if isinstance(value, str):
        try:
            return dt.date.fromisoformat(value.strip())
        except ValueError:
            raise ValueError(f"{value!r} is not a date (YYYY-MM-DD)") from None
    return value


#: A date, written plain (2026-01-01) or quoted ("2026-01-01").
Date = typing.Annotated[dt.date, BeforeValidator(_iso_date)]


def parse(model: type[M], document: object, path: Path | str,
          error: type[ConfigFileError] = ConfigFileError, redact: bool = False) -> M:
    """``document`` validated as ``model``; raises ``error`` naming the file and every bad field
    (without the offending values when ``redact``)."""
    try:
        return model.model_validate(document)
    except ValidationError as exc:
        raise error.from_validation(path, exc, model, redact) from None


def load_model(model: type[M], path: Path | str, error: type[ConfigFileError] = ConfigFileError,
               redact: bool = False) -> M:
    """Read the YAML file at ``path`` and validate it as ``model``."""
    return parse(model, read_yaml(path, error), path, error, redact)


# -- pydantic's errors in the platform's words -----------------------------------------------------


def field_path(loc: Sequence[int | str]) -> str:
    """``("entries", 2, "codes", 0)`` → ``entries[2].codes[0]``."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


def kind(value: object, redact: bool = False) -> str:
    """What a YAML value is, in a user's words (and which, unless ``redact``)."""
    if value is None:
        return "nothing"
    if isinstance(value, bool):
        return "true/false"
    if isinstance(value, int | float):
        return "a number" if redact else f"a number ({value!r})"
    if isinstance(value, str):
        return "text" if redact else f"text ({value!r})"
    if isinstance(value, dt.date):
        return f"a date ({value.isoformat()})"
    if isinstance(value, list | tuple):
        return "a list"
    if isinstance(value, Mapping):
        return "a mapping"
    return type(value).__name__


def _unwrap(annotation: Any) -> Any:
    """The type inside Annotated[...] and Optional[...]."""
    while True:
        origin = typing.get_origin(annotation)
        if origin is typing.Annotated:
            annotation = typing.get_args(annotation)[0]
        elif origin in (typing.Union, types.UnionType):
            members = [a for a in typing.get_args(annotation) if a is not type(None)]
            if len(members) != 1:
                return annotation
            annotation = members[0]
        else:
            return annotation


def _model_at(model: type[BaseModel], loc: Sequence[int | str]) -> type[BaseModel] | None:
    """The model class found at ``loc`` inside ``model``, when the location leads to one."""
    current: Any = model
    for part in loc:
        current = _unwrap(current)
        origin = typing.get_origin(current)
        if isinstance(part, int) and origin in (list, tuple, Sequence, frozenset, set):
            current = typing.get_args(current)[0]
        elif isinstance(current, type) and issubclass(current, BaseModel) and isinstance(part, str):
            fields = {f.validation_alias if isinstance(f.validation_alias, str) else (f.alias or name): f
                      for name, f in current.model_fields.items()}
            if part not in fields:
                return None
            current = fields[part].annotation
        elif origin in (dict, Mapping) and isinstance(part, str):
            current = typing.get_args(current)[1]
        else:
            return None
    current = _unwrap(current)
    return current if isinstance(current, type) and issubclass(current, BaseModel) else None


def allowed_keys(model: type[BaseModel]) -> list[str]:
    return [f.validation_alias if isinstance(f.validation_alias, str) else (f.alias or name)
            for name, f in model.model_fields.items()]


# pydantic error types that say the value has the wrong type -> what was expected instead.
_EXPECTED = {
    **dict.fromkeys(("int_type", "int_parsing", "int_from_float"), "a whole number"),
    **dict.fromkeys(("float_type", "float_parsing"), "a number"),
    **dict.fromkeys(("bool_type", "bool_parsing"), "true or false"),
    **dict.fromkeys(("list_type", "tuple_type", "set_type", "frozen_set_type"), "a list"),
    **dict.fromkeys(("dict_type", "model_type", "model_attributes_type", "mapping_type"), "a mapping"),
}


def describe(error: ErrorDetails, model: type[BaseModel] | None = None, redact: bool = False) -> str:
    """One pydantic error as a problem phrase (the field is said separately). ``redact`` leaves the
    offending value out (a file of secrets)."""
    code = error["type"]
    value = error.get("input")
    ctx = error.get("ctx") or {}
    got = f", got {kind(value, redact)}"
    if code == "missing":
        return "is required"
    if code == "extra_forbidden":
        inner = _model_at(model, error["loc"][:-1]) if model is not None else None
        return f"unknown key (allowed: {', '.join(allowed_keys(inner))})" if inner is not None else "unknown key"
    if code == "string_type":
        if isinstance(value, int | float) and not isinstance(value, bool) and not redact:
            return f'expected text, got the number {value!r} (YAML reads it as a number: quote it, "{value}")'
        return f"expected text{got}"
    if code in _EXPECTED:
        return f"expected {_EXPECTED[code]}{got}"
    if code == "string_too_short":
        return "must not be empty" if ctx.get("min_length") == 1 else \
            f"needs at least {ctx.get('min_length')} characters"
    if code == "too_short":
        return "expected a non-empty list" if ctx.get("min_length") == 1 else \
            f"needs at least {ctx.get('min_length')} items"
    if code in ("literal_error", "enum"):
        return f"{'the value' if redact else repr(value)} is not one of {ctx.get('expected')}"
    if code in ("value_error", "assertion_error"):
        message = error["msg"]
        for prefix in ("Value error, ", "Assertion failed, "):
            message = message.removeprefix(prefix)
        return message
    if code.startswith(("date_", "datetime_")):
        return f"{'not' if redact else repr(value) + ' is not'} a date (YYYY-MM-DD)"
    message = error["msg"].replace("Input should be", "must be")
    return f"{message}, got {value!r}" if isinstance(value, str | int | float) and not redact else message


def describe_errors(error: ValidationError, model: type[BaseModel] | None = None,
                    redact: bool = False) -> list[tuple[str, str]]:
    """Every error as (field path, problem), unknown keys first."""
    details = sorted(error.errors(include_url=False), key=lambda e: e["type"] != "extra_forbidden")
    return [(field_path(e["loc"]), describe(e, model, redact)) for e in details]
