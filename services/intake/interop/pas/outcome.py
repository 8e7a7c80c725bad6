"""Problems with a PAS Bundle and the OperationOutcome that reports them.

A problem names the element with a FHIRPath ``expression`` rooted at the resource that was posted
(``Bundle.entry[0].resource.item[1].extension('http://...requestedService')``) and has an
OperationOutcome issue type: ``structure`` (not valid FHIR JSON), ``required`` (missing),
``value`` (present but wrong), ``invariant`` (a PAS rule across elements), ``not-found`` (a reference
that does not resolve inside the Bundle), ``not-supported`` (valid PAS the platform cannot review:
it names what is needed instead), ``too-long`` and ``too-costly`` (over the input limits).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

MAX_ISSUES = 100


@dataclass(frozen=True)
class Problem:
    expression: str
    code: str
    message: str
    severity: str = "error"


def fhirpath(path: Iterable[str | int], root: str = "Bundle") -> str:
    """('entry', 0, 'resource', 'item', 1) -> 'Bundle.entry[0].resource.item[1]'."""
    out = root
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else f".{part}"
    return out


def operation_outcome(problems: Sequence[Problem]) -> dict[str, Any]:
    """The OperationOutcome of a 400 answer to ``$submit`` or ``$inquire``: one issue per problem,
    each with its diagnostics and the element's FHIRPath. At most ``MAX_ISSUES`` issues (a hostile
    Bundle could have millions of problems); the last says how many were left out."""
    shown = list(problems[:MAX_ISSUES])
    issues: list[dict[str, Any]] = [
        {"severity": p.severity, "code": p.code, "diagnostics": p.message, "expression": [p.expression]}
        for p in shown
    ]
    if len(problems) > MAX_ISSUES:
        issues.append({"severity": "information", "code": "too-costly",
                       "diagnostics": f"{len(problems) - MAX_ISSUES} further problems not listed"})
    if not issues:
        issues.append({"severity": "information", "code": "informational", "diagnostics": "no problems"})
    return {"resourceType": "OperationOutcome", "issue": issues}
