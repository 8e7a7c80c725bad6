"""The clinical-fact catalog: the type and unit of every fact the review service's criteria read, and
of the synonyms its vocabulary copies into them, with the units the platform knows.

Services never import each other, so what intake must know of the criteria travels as data: the
catalog file (``services/common/clinical-facts.yaml``) is generated from the criteria library by
``urctl criteria catalog --write`` (a test keeps it in step), and intake reads it to refuse at the
door what no criteria can use (:meth:`FactCatalog.problems`):

* a number in another unit than its fact declares (``symptom_duration_weeks`` sent in ``days``), or
  a unit on a fact that is not a number;
* a negative duration or count: every unit the platform knows measures a quantity that cannot be
  below zero (weeks, visits, sessions, points, events per hour...), whether the fact is in the
  catalog or the provider named the unit of a fact it is not.

A unit is recognised in its usual spellings (``week``, ``wk``, ``Weeks``); an empty unit means the
fact's declared one.
"""

from __future__ import annotations

import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated

from pydantic import Field

from services.common.config_files import ConfigFileError, FileModel, Text, parse, read_yaml

DEFAULT_CATALOG = Path(__file__).resolve().parent / "clinical-facts.yaml"

UnitKind = typing.Literal["duration", "count", "rate", "score", "measure"]
FactType = typing.Literal["bool", "number", "text", "date"]


class CatalogError(ConfigFileError):
    """A catalog file that cannot be used: ``file: field: problem``."""


class UnitEntry(FileModel):
    kind: UnitKind
    aliases: list[Text] = []


class FactEntry(FileModel):
    type: FactType
    unit: Text | None = None
    synonym_of: Text | None = None


class CatalogFile(FileModel):
    version: typing.Literal[1]
    source: Text
    units: Annotated[dict[str, UnitEntry], Field(min_length=1)]
    facts: dict[str, FactEntry]


def _key(unit: str) -> str:
    return " ".join(unit.strip().lower().split())


@dataclass(frozen=True)
class FactCatalog:
    """The facts and units of a catalog file (see the module docstring)."""

    facts: Mapping[str, FactEntry]
    units: Mapping[str, UnitEntry]
    _spellings: dict[str, str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        spellings: dict[str, str] = {}
        for name, entry in self.units.items():
            for spelling in (name, *entry.aliases):
                spellings[_key(spelling)] = name
        object.__setattr__(self, "_spellings", spellings)

    def unit(self, text: str) -> str | None:
        """The known unit ``text`` spells (``wk`` -> ``weeks``), or None."""
        return self._spellings.get(_key(text))

    def problems(self, name: str, kind: str | None, value: object, unit: str) -> list[tuple[str, str]]:
        """(field, problem) for one stated fact: ``field`` is ``unit`` or ``number_value``; empty when
        nothing is wrong with its unit or sign. ``kind`` is the value's type as sent."""
        found: list[tuple[str, str]] = []
        entry = self.facts.get(name)
        given = unit.strip()
        known = self.unit(given) if given else None
        if entry is not None and entry.type != "number" and given:
            found.append(("unit", f"{name} is a {entry.type} fact and takes no unit"))
            return found
        if entry is not None and entry.unit is not None and given and known != entry.unit:
            found.append(("unit", f"{given!r} is not the unit of {name}: send it in {entry.unit}"))
        measured = entry.unit if entry is not None and entry.unit is not None else known
        if kind == "number" and isinstance(value, int | float) and not isinstance(value, bool) and value < 0 \
                and measured is not None:
            what = self.units[measured].kind
            found.append(("number_value", f"{name} is a {what} in {measured}: it cannot be negative"))
        return found


def parse_catalog(document: object, path: Path | str) -> FactCatalog:
    """The catalog a parsed YAML document describes; raises :class:`CatalogError`."""
    model = parse(CatalogFile, document, path, CatalogError)
    for name, entry in model.facts.items():
        if entry.unit is not None and entry.unit not in model.units:
            raise CatalogError(path, f"facts.{name}.unit", f"{entry.unit!r} is not one of the catalog's units")
    return FactCatalog(model.facts, model.units)


def load_catalog(path: Path | str = DEFAULT_CATALOG) -> FactCatalog:
    """Read and validate a catalog file (by default the one generated from the shipped criteria)."""
    return parse_catalog(read_yaml(path, CatalogError), path)
