"""Request files: one ``SubmitRequestRequest`` in protobuf JSON form, written as JSON or YAML (what
``urctl submit`` sends and ``urctl criteria explain`` evaluates locally)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml
from google.protobuf import json_format
from ur.intake.v1 import intake_pb2

from services.cli.base import RequestFileError
from services.common.config_files import load_yaml


def _parse_document(path: Path, text: str) -> Any:
    suffix = path.suffix.lower()
    if suffix == ".json" or (suffix not in (".yaml", ".yml") and text.lstrip().startswith(("{", "["))):
        try:
            return json.loads(text)
        except json.JSONDecodeError as exc:
            raise RequestFileError(f"{path}: invalid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}") \
                from exc
    try:
        return load_yaml(text)  # duplicate keys refused
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise RequestFileError(f"{path}: invalid YAML{where}: {problem}") from exc


def load_request_file(path: str | Path) -> intake_pb2.SubmitRequestRequest:
    """Read one SubmitRequestRequest from a JSON or YAML file in protobuf JSON form (snake_case or
    camelCase field names, enum names or numbers).

    ``.json`` files are read as JSON, ``.yaml``/``.yml`` as YAML; other names are read as JSON when
    they start with ``{`` and as YAML otherwise. Raises :class:`RequestFileError` whose message
    starts with the path and names the problem (missing file, syntax error with its line, a
    document that is not one mapping, an unknown field or a wrongly typed value).
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise RequestFileError(f"{path}: no such file") from exc
    except IsADirectoryError as exc:
        raise RequestFileError(f"{path}: is a directory, not a request file") from exc
    except UnicodeDecodeError as exc:
        raise RequestFileError(f"{path}: not UTF-8 text") from exc
    except OSError as exc:
        raise RequestFileError(f"{path}: cannot read: {exc.strerror or exc}") from exc
    document = _parse_document(path, text)
    if document is None:
        raise RequestFileError(f"{path}: is empty; expected one SubmitRequestRequest")
    if not isinstance(document, dict):
        kind = "a list" if isinstance(document, list) else f"a {type(document).__name__}"
        raise RequestFileError(f"{path}: holds {kind}; expected one SubmitRequestRequest object (a mapping)")
    request = intake_pb2.SubmitRequestRequest()
    try:
        json_format.ParseDict(document, request)
    except json_format.ParseError as exc:
        hint = ""
        if "string" in str(exc).lower() and path.suffix.lower() in (".yaml", ".yml"):
            hint = ' (quote values that are strings of digits, e.g. npi: "1234567893")'
        raise RequestFileError(f"{path}: not a valid SubmitRequestRequest: {exc}{hint}") from exc
    return request
