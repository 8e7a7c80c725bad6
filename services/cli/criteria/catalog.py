"""``urctl criteria catalog [--write] [--check]``: the clinical-fact catalog intake reads, generated
from the criteria library (services/common/fact_catalog.py says what intake does with it).

Every fact a current criteria set declares is listed with its type and unit (the facts a line states
by itself, ``requested_units``, are the line's business, not the provider's); every synonym the
vocabulary copies into a criteria fact takes that fact's type and unit, and every stated fact a
vocabulary mapping reads as a trigger takes the type of the value it looks for. A unit no entry of
:data:`UNITS` knows, or one fact declared with two types or units, stops the generation: the catalog
must be unambiguous for intake to refuse anything with it.

Without flags the catalog is printed; ``--write`` writes it to the file intake reads
(services/common/clinical-facts.yaml, or ``--output``); ``--check`` exits 1 when that file differs
from what the library gives.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from rich.console import Console

from services.cli.base import EXIT_OK, EXIT_SERVICE_ERROR, Targets
from services.cli.criteria.library import CriteriaInputError, current_library, default_criteria_dir
from services.common.fact_catalog import DEFAULT_CATALOG
from services.review.adapters.criteria_loader import CriteriaLibrary
from services.review.domain.criteria import LINE_DERIVED_FACTS

# The units criteria may declare: their kind and the other spellings providers use. Every one
# measures a quantity that cannot be negative.
UNITS: Mapping[str, tuple[str, tuple[str, ...]]] = {
    "days": ("duration", ("day", "d")),
    "weeks": ("duration", ("week", "wk", "wks")),
    "months": ("duration", ("month", "mo", "mos")),
    "years": ("duration", ("year", "yr", "yrs")),
    "hours": ("duration", ("hour", "h", "hr", "hrs")),
    "hours/week": ("rate", ("hours per week", "h/week", "h/wk", "hrs/week")),
    "events/hour": ("rate", ("events per hour", "events/h", "/h")),
    "visits": ("count", ("visit",)),
    "sessions": ("count", ("session",)),
    "treatments": ("count", ("treatment",)),
    "units": ("count", ("unit",)),
    "points": ("score", ("point", "pts")),
    "kg/m2": ("measure", ("kg/m^2", "kg/m²")),
}

HEADER = """\
# The clinical-fact catalog: what intake knows of the facts the review service's criteria read.
# Generated from the criteria library ({source}) by `urctl criteria catalog --write`;
# do not edit by hand (tests/unit/cli/test_fact_catalog.py checks it matches the library).
# Intake refuses a number sent in another unit than its fact's, and a negative duration or count
# (services/common/fact_catalog.py).
"""


class CatalogBuildError(CriteriaInputError):
    """The library's facts cannot make an unambiguous catalog."""


def build_catalog(library: CriteriaLibrary) -> dict[str, dict[str, dict[str, Any]]]:
    """``{"units": ..., "facts": ...}`` of the catalog for ``library`` (sorted by name)."""
    facts = _criteria_facts(library)
    for v in library.vocabularies:
        for m in v.mappings:
            for name in m.when.facts:
                if name in facts:
                    continue
                if m.synonym and m.fact in facts:
                    facts[name] = {**facts[m.fact], "synonym_of": m.fact}
                elif m.when.fact_value is not None:
                    facts[name] = {"type": _type_of(m.when.fact_value)}
    units = {name: {"kind": kind, "aliases": list(aliases)} for name, (kind, aliases) in UNITS.items()}
    return {"units": dict(sorted(units.items())), "facts": dict(sorted(facts.items()))}


def _criteria_facts(library: CriteriaLibrary) -> dict[str, dict[str, Any]]:
    """Type and unit of every fact the current sets declare; one fact, one type and unit."""
    facts: dict[str, dict[str, Any]] = {}
    owners: dict[str, str] = {}
    for c in library.current():
        for spec in c.facts:
            if spec.name in LINE_DERIVED_FACTS:
                continue
            if spec.unit is not None and spec.unit not in UNITS:
                raise CatalogBuildError(f"{c.id}: fact {spec.name!r} has the unit {spec.unit!r}, which the catalog "
                                        f"does not know; add it to UNITS in {__name__}")
            entry: dict[str, Any] = {"type": spec.type.value, **({"unit": spec.unit} if spec.unit else {})}
            if spec.name in facts and facts[spec.name] != entry:
                raise CatalogBuildError(f"fact {spec.name!r} is {_shown(facts[spec.name])} in {owners[spec.name]} "
                                        f"but {_shown(entry)} in {c.id}")
            facts[spec.name] = entry
            owners.setdefault(spec.name, c.id)
    return facts


def _type_of(value: object) -> str:
    return "bool" if isinstance(value, bool) else "number" if isinstance(value, int | float) else "text"


def _shown(entry: Mapping[str, Any]) -> str:
    return f"{entry['type']}" + (f" in {entry['unit']}" if "unit" in entry else "")


def render_catalog(catalog: Mapping[str, Mapping[str, Mapping[str, Any]]], source: str) -> str:
    """The catalog as the YAML file intake reads: one line per unit and per fact, strings quoted."""
    def flow(entry: Mapping[str, Any]) -> str:
        parts = []
        for key, value in entry.items():
            shown = "[" + ", ".join(json.dumps(v, ensure_ascii=False) for v in value) + "]" \
                if isinstance(value, list) else json.dumps(value, ensure_ascii=False)
            parts.append(f"{key}: {shown}")
        return "{" + ", ".join(parts) + "}"

    lines = [HEADER.format(source=source).rstrip("\n"), "version: 1", f"source: {json.dumps(source)}", "units:"]
    lines += [f"  {json.dumps(name)}: {flow(entry)}" for name, entry in catalog["units"].items()]
    lines.append("facts:")
    lines += [f"  {name}: {flow(entry)}" for name, entry in catalog["facts"].items()]
    return "\n".join(lines) + "\n"


def catalog_text(directory: Path) -> str:
    """The catalog file's text for the criteria library in ``directory``."""
    library = current_library(directory)
    return render_catalog(build_catalog(library), _source(directory))


def _source(directory: Path) -> str:
    shipped = Path(__file__).resolve().parents[3]
    try:
        return str(directory.resolve().relative_to(shipped))
    except ValueError:
        return str(directory)


def cmd_catalog(args: argparse.Namespace, targets: Targets, console: Console) -> int:
    directory = Path(args.criteria) if args.criteria else default_criteria_dir()
    text = catalog_text(directory)
    output = Path(args.output) if args.output else DEFAULT_CATALOG
    if args.check:
        current = output.read_text(encoding="utf-8") if output.is_file() else ""
        if current != text:
            console.print(f"{output} does not match the criteria library in {directory}: run "
                          "`urctl criteria catalog --write`", style="red", soft_wrap=True)
            return EXIT_SERVICE_ERROR
        console.print(f"{output} matches the criteria library", style="green")
        return EXIT_OK
    if args.write:
        output.write_text(text, encoding="utf-8")
        console.print(f"wrote {output}", style="green")
        return EXIT_OK
    print(text, end="")
    return EXIT_OK
