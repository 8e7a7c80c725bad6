"""Input limits checked before any FHIR parsing, so a hostile body costs little and never raises.

The whole body, every string, the nesting depth and the number of JSON values are bounded; JSON
with duplicate keys, NaN or Infinity is refused (FHIR JSON allows none of them); every
``resourceType`` must name an R4 resource the model library knows (the library itself fails with
a bare KeyError on an unknown one).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from services.intake.interop.pas.outcome import Problem, fhirpath


@dataclass(frozen=True)
class Limits:
    max_bytes: int = 8 * 1024 * 1024  # attachments travel inline, so a Bundle may be large
    max_string: int = 4 * 1024 * 1024
    max_depth: int = 40  # PAS Bundles nest about 12 deep (entry.resource.item.extension.value...)
    max_nodes: int = 200_000
    max_array: int = 5_000


DEFAULT_LIMITS = Limits()


@lru_cache(maxsize=1)
def resource_types() -> frozenset[str]:
    """Every resource type of the FHIR model library's R4B package."""
    from fhir.resources.R4B import fhirtypes, get_fhir_model_class
    from fhir.resources.R4B.resource import Resource

    names = set()
    for attr in dir(fhirtypes):
        if not attr.endswith("Type") or not attr[:1].isupper():
            continue
        try:
            klass = get_fhir_model_class(attr[: -len("Type")])
        except (ValueError, AttributeError, ImportError, TypeError):
            continue
        if isinstance(klass, type) and issubclass(klass, Resource):
            names.add(attr[: -len("Type")])
    return frozenset(names)


class _Duplicate(ValueError):
    pass


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise _Duplicate(key)
        out[key] = value
    return out


def _no_constants(name: str) -> Any:
    raise ValueError(f"{name} is not allowed in FHIR JSON")


def load(body: str | bytes | Mapping[str, Any], limits: Limits = DEFAULT_LIMITS) -> tuple[Any, list[Problem]]:
    """Decode (if needed) and bound-check a request body. Returns the JSON value and problems; the
    value is None when it could not be decoded."""
    if isinstance(body, (bytes, bytearray)):
        if len(body) > limits.max_bytes:
            return None, [Problem("Bundle", "too-long", f"{len(body)} bytes, more than {limits.max_bytes}")]
        try:
            body = bytes(body).decode("utf-8")
        except UnicodeDecodeError as exc:
            return None, [Problem("Bundle", "structure", f"the body is not UTF-8 (byte {exc.start})")]
    if isinstance(body, str):
        if len(body) > limits.max_bytes:
            return None, [Problem("Bundle", "too-long", f"{len(body)} characters, more than {limits.max_bytes}")]
        try:
            value = json.loads(body, object_pairs_hook=_no_duplicates, parse_constant=_no_constants)
        except _Duplicate as exc:
            return None, [Problem("Bundle", "structure", f"a JSON object repeats the key {str(exc)!r}")]
        except RecursionError:
            return None, [Problem("Bundle", "too-costly", "the JSON nests too deeply")]
        except ValueError as exc:  # JSONDecodeError, int too long, NaN/Infinity
            return None, [Problem("Bundle", "structure", f"not JSON: {str(exc)[:200]}")]
    else:
        value = body
    return value, check(value, limits)


def check(value: Any, limits: Limits = DEFAULT_LIMITS) -> list[Problem]:
    """Depth, size and resourceType checks, iteratively (no recursion on hostile depth)."""
    problems: list[Problem] = []
    known = resource_types()
    nodes = 0
    stack: list[tuple[Any, tuple[str | int, ...]]] = [(value, ())]
    while stack:
        node, path = stack.pop()
        nodes += 1
        if nodes > limits.max_nodes:
            return [*problems, Problem("Bundle", "too-costly", f"more than {limits.max_nodes} JSON values")]
        if len(path) > limits.max_depth:
            return [*problems, Problem(fhirpath(path), "too-costly", f"nested deeper than {limits.max_depth} levels")]
        if _visit(node, path, limits, known, problems, stack) and len(problems) > 200:
            break
    return problems


def _visit(node: Any, path: tuple[str | int, ...], limits: Limits, known: frozenset[str],
           problems: list[Problem], stack: list[tuple[Any, tuple[str | int, ...]]]) -> bool:
    """Check one JSON value, adding its problems and pushing its children; False when the node is
    refused whole (its children are not looked at)."""
    if isinstance(node, str):
        if len(node) > limits.max_string:
            problems.append(Problem(fhirpath(path), "too-long",
                                    f"a string of {len(node)} characters, more than {limits.max_string}"))
    elif isinstance(node, Mapping):
        kind = node.get("resourceType")
        if "resourceType" in node and not (isinstance(kind, str) and kind in known):
            problems.append(Problem(fhirpath((*path, "resourceType")), "structure",
                                    f"{str(kind)[:80]!r} is not an R4 resource type"))
            return False
        for key, child in node.items():
            if not isinstance(key, str):
                problems.append(Problem(fhirpath(path), "structure", "object keys must be strings"))
                break
            stack.append((child, (*path, key)))
    elif isinstance(node, (list, tuple)):
        if len(node) > limits.max_array:
            problems.append(Problem(fhirpath(path), "too-costly",
                                    f"an array of {len(node)} values, more than {limits.max_array}"))
            return False
        stack.extend((child, (*path, i)) for i, child in enumerate(node))
    elif isinstance(node, float) and not math.isfinite(node):
        problems.append(Problem(fhirpath(path), "value", "not a finite number"))
    elif node is not None and not isinstance(node, (bool, int, float)):
        problems.append(Problem(fhirpath(path), "structure", f"{type(node).__name__} is not a JSON value"))
    return True
