"""The no-prior-authorization list (YAML) to :class:`NoPriorAuthList`, strictly.

File shape::

    version: "2026.1"
    entries:
      - codes: ["99213", "99214"]
        lines_of_business: [medicare_advantage, commercial]
        reason: office visit
        source: the public list it rests on

Unknown or missing keys, duplicate keys, values of the wrong YAML type, codes that are neither CPT
nor HCPCS shaped, unknown lines of business and a code listed twice for one line of business are
refused with a :class:`PolicyFileError` naming the file and the field (``entries[2].codes[1]``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from services.review.adapters import strict_yaml
from services.review.domain.policy import InvalidPolicy, NoPriorAuthEntry, NoPriorAuthList

DEFAULT_NO_PA_LIST = Path(__file__).resolve().parents[1] / "policy" / "no-prior-auth.yaml"

TOP_KEYS = frozenset({"version", "entries"})
ENTRY_KEYS = frozenset({"codes", "lines_of_business", "reason", "source"})


class PolicyFileError(ValueError):
    """One problem in one policy file: str is ``"file.yaml: field.path: problem"``."""

    def __init__(self, path: Path | str, field: str, problem: str) -> None:
        self.path = Path(path)
        self.field = field
        self.problem = problem
        where = f"{self.path.name}: {field}: " if field else f"{self.path.name}: "
        super().__init__(where + problem)


def _mapping(path: Path, node: Any, where: str, keys: frozenset[str]) -> dict[str, Any]:
    if not isinstance(node, dict):
        raise PolicyFileError(path, where, f"expected a mapping, got {type(node).__name__}")
    unknown = sorted(str(k) for k in node if k not in keys)
    if unknown:
        raise PolicyFileError(path, f"{where}.{unknown[0]}" if where else unknown[0],
                              f"unknown key (expected: {', '.join(sorted(keys))})")
    missing = sorted(k for k in keys if k not in node)
    if missing:
        raise PolicyFileError(path, f"{where}.{missing[0]}" if where else missing[0], "is required")
    return node


def _text(path: Path, node: Any, where: str) -> str:
    if not isinstance(node, str) or not node.strip():
        raise PolicyFileError(path, where, "expected non-empty text (quote codes: \"99213\")")
    return node.strip()


def _texts(path: Path, node: Any, where: str) -> list[str]:
    if not isinstance(node, list) or not node:
        raise PolicyFileError(path, where, "expected a non-empty list")
    return [_text(path, item, f"{where}[{i}]") for i, item in enumerate(node)]


def parse_no_prior_auth(doc: Any, path: Path) -> NoPriorAuthList:
    """The list a parsed YAML document describes; raises :class:`PolicyFileError`."""
    top = _mapping(path, doc, "", TOP_KEYS)
    _text(path, top["version"], "version")
    raw_entries = top["entries"]
    if not isinstance(raw_entries, list):
        raise PolicyFileError(path, "entries", "expected a list")
    entries: list[NoPriorAuthEntry] = []
    seen: dict[tuple[str, str], str] = {}
    for i, raw in enumerate(raw_entries):
        where = f"entries[{i}]"
        entry = _mapping(path, raw, where, ENTRY_KEYS)
        codes = _texts(path, entry["codes"], f"{where}.codes")
        lobs = _texts(path, entry["lines_of_business"], f"{where}.lines_of_business")
        reason = _text(path, entry["reason"], f"{where}.reason")
        source = _text(path, entry["source"], f"{where}.source")
        for j, lob in enumerate(lobs):
            for k, code in enumerate(codes):
                field = f"{where}.codes[{k}]"
                if (lob, code) in seen:
                    raise PolicyFileError(path, field, f"{code!r} is already listed for {lob} at {seen[(lob, code)]}")
                seen[(lob, code)] = field
                candidate = NoPriorAuthEntry(code, lob, reason, source)
                try:
                    NoPriorAuthList((candidate,))
                except InvalidPolicy as exc:
                    bad_field = field if exc.field.endswith(".code") else f"{where}.lines_of_business[{j}]"
                    raise PolicyFileError(path, bad_field, exc.problem) from exc
                entries.append(candidate)
    return NoPriorAuthList(tuple(entries), name=path.name)


def load_no_prior_auth(path: Path | str) -> NoPriorAuthList:
    """Read and validate the no-prior-authorization list at ``path``."""
    file = Path(path)
    try:
        content = file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise PolicyFileError(file, "", f"cannot read: {exc}") from exc
    try:
        doc = strict_yaml.load(content)
    except yaml.YAMLError as exc:
        raise PolicyFileError(file, "", f"not valid YAML: {exc}") from exc
    return parse_no_prior_auth(doc, file)
