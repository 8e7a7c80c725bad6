"""Criteria files and directories, loaded and validated exactly as the review service loads them, and
review's own translation of a request into the facts each line's criteria see."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ur.common.v1 import types_pb2

from services.cli.base import UsageError
from services.common import settings
from services.review.adapters.criteria_loader import (
    CriteriaError,
    CriteriaLibrary,
    CriteriaLibraryError,
    load_criteria,
    load_library,
)
from services.review.adapters.rules_engine import DurableRulesMatcher
from services.review.domain.criteria import CriteriaSet, LineFacts
from services.review.service_layer import lines

REPO = Path(__file__).resolve().parents[3]
SHIPPED_CRITERIA_DIR = REPO / "services" / "review" / "criteria"


class CriteriaInputError(UsageError):
    """A criteria, draft or request file that cannot be used (exit 2)."""


def default_criteria_dir() -> Path:
    """The directory the review service loads: UR_REVIEW_CRITERIA_DIR, else the shipped library."""
    configured = settings.get("UR_REVIEW_CRITERIA_DIR")
    return Path(configured) if configured else SHIPPED_CRITERIA_DIR


def criteria_paths(args: argparse.Namespace) -> list[Path]:
    """The PATH arguments of ``validate`` and ``test``; the default criteria directory when none."""
    return [Path(p) for p in args.paths] or [default_criteria_dir()]


def current_library(directory: Path) -> CriteriaLibrary:
    """The library in ``directory``; :class:`CriteriaInputError` naming every problem if it does not load."""
    try:
        return load_library(directory)
    except CriteriaLibraryError as exc:
        raise CriteriaInputError(f"the criteria library in {directory} does not load:\n"
                                 + "\n".join(f"  {e}" for e in exc.errors)) from exc


@dataclass(frozen=True)
class LoadedSet:
    path: Path
    criteria: CriteriaSet


@dataclass
class Validation:
    """Every valid set of the given paths, and every problem (one per file, plus duplicates)."""

    sets: list[LoadedSet] = field(default_factory=list)
    problems: list[CriteriaError] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def _criteria_files(directory: Path) -> list[Path]:
    return sorted(p for p in directory.iterdir() if p.suffix in (".yaml", ".yml") and p.is_file())


def engine_problem(loaded: LoadedSet) -> CriteriaError | None:
    """Whether durable-rules compiles the set, as the review service does at start."""
    try:
        DurableRulesMatcher().compile(loaded.criteria)
    except Exception as exc:  # noqa: BLE001 - the engine's own error type is an implementation detail
        return CriteriaError(loaded.path, "conditions", f"the rules engine refuses this set: {exc}")
    return None


def validate_paths(paths: Sequence[Path]) -> Validation:
    """Load every file, and every directory as a library; collect every problem."""
    result = Validation()
    failed: set[Path] = set()
    for path in paths:
        if path.is_dir():
            try:
                load_library(path)
            except CriteriaLibraryError as exc:
                result.problems.extend(exc.errors)
                failed.update(e.path.resolve() for e in exc.errors)
            candidates = [p for p in _criteria_files(path) if p.resolve() not in failed] if path.exists() else []
        elif path.exists():
            candidates = [path]
        else:
            result.problems.append(CriteriaError(path, "", "no such file or directory"))
            continue
        for file in candidates:
            try:
                result.sets.append(LoadedSet(file, load_criteria(file)))
            except CriteriaError as exc:
                result.problems.append(exc)
    # The same id and version in two of the given paths (a directory catches its own).
    first: dict[str, LoadedSet] = {}
    unique: list[LoadedSet] = []
    for loaded in result.sets:
        other = first.get(loaded.criteria.key)
        if other is not None and other.path.resolve() != loaded.path.resolve():
            c = loaded.criteria
            result.problems.append(CriteriaError(loaded.path, "version", f"{c.id} version {c.version} is also "
                                                 f"defined in {other.path.name}; give changed criteria a new version"))
            continue
        if other is None:
            first[loaded.criteria.key] = loaded
            unique.append(loaded)
    result.sets = []
    for loaded in unique:
        problem = engine_problem(loaded)
        if problem is not None:
            result.problems.append(problem)
        else:
            result.sets.append(loaded)
    return result


# -- from a request to its lines' facts: review's own translation (service_layer/lines.py) ---------

def request_lines(message: lines.RequestMessage) -> list[tuple[types_pb2.ServiceLine, LineFacts]]:
    """(service line, LineFacts) as review builds them; an impossible date fact is left out (intake
    would refuse the request; explain still shows what the rest of it gives)."""
    return lines.request_lines(message, drop_impossible_dates=True)


explanation_of = lines.explanation_proto
