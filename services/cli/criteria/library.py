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
from services.common.config_files import ConfigFileError
from services.review.adapters.criteria_loader import (
    CriteriaError,
    CriteriaLibrary,
    CriteriaLibraryError,
    load_criteria,
    load_library,
)
from services.review.adapters.rules_engine import DurableRulesMatcher
from services.review.adapters.vocabulary_loader import (
    VOCABULARY_DIR,
    VocabularyError,
    load_vocabulary,
    vocabulary_files,
)
from services.review.domain.criteria import CriteriaSet, LineFacts
from services.review.domain.vocabulary import Vocabulary
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


@dataclass(frozen=True)
class LoadedVocabulary:
    path: Path
    vocabulary: Vocabulary


@dataclass
class Validation:
    """Every valid set and vocabulary of the given paths, every problem (one per file, plus
    duplicates), and the library of each directory that loaded (for the vocabulary's derivations)."""

    sets: list[LoadedSet] = field(default_factory=list)
    problems: list[ConfigFileError] = field(default_factory=list)
    vocabularies: list[LoadedVocabulary] = field(default_factory=list)
    libraries: dict[Path, CriteriaLibrary] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.problems

    def library_of(self, path: Path) -> CriteriaLibrary | None:
        """The library loaded from the directory holding ``path`` (a criteria or vocabulary file)."""
        folder = path.resolve().parent
        if folder.name == VOCABULARY_DIR:
            folder = folder.parent
        return self.libraries.get(folder)


def _criteria_files(directory: Path) -> list[Path]:
    return sorted(p for p in directory.iterdir() if p.suffix in (".yaml", ".yml") and p.is_file())


def engine_problem(loaded: LoadedSet) -> CriteriaError | None:
    """Whether durable-rules compiles the set, as the review service does at start."""
    try:
        DurableRulesMatcher().compile(loaded.criteria)
    except Exception as exc:  # noqa: BLE001 - the engine's own error type is an implementation detail
        return CriteriaError(loaded.path, "conditions", f"the rules engine refuses this set: {exc}")
    return None


def _vocabulary_file(path: Path) -> bool:
    return path.resolve().parent.name == VOCABULARY_DIR


def validate_paths(paths: Sequence[Path]) -> Validation:
    """Load every file, and every directory as a library (its criteria and its vocabulary); collect
    every problem. A vocabulary file given alone is checked against the library it sits in."""
    result = Validation()
    failed: set[Path] = set()
    for path in paths:
        if not path.exists():
            result.problems.append(CriteriaError(path, "", "no such file or directory"))
            continue
        candidates, vocabulary_candidates = _candidates(path, result, failed)
        for file in candidates:
            try:
                result.sets.append(LoadedSet(file, load_criteria(file)))
            except CriteriaError as exc:
                result.problems.append(exc)
        for file in vocabulary_candidates:
            try:
                result.vocabularies.append(LoadedVocabulary(file, load_vocabulary(file)))
            except VocabularyError as exc:
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


def _candidates(path: Path, result: Validation, failed: set[Path]) -> tuple[list[Path], list[Path]]:
    """The criteria and vocabulary files of ``path`` to read one by one: a directory is first loaded
    as a library (its problems recorded, their files added to ``failed`` and left out); a vocabulary
    file is checked against the library it sits in."""
    if path.is_dir():
        try:
            result.libraries[path.resolve()] = load_library(path)
        except CriteriaLibraryError as exc:
            result.problems.extend(exc.errors)
            failed.update(e.path.resolve() for e in exc.errors)
        return ([p for p in _criteria_files(path) if p.resolve() not in failed],
                [p for p in vocabulary_files(path) if p.resolve() not in failed])
    if _vocabulary_file(path):
        return [], _vocabulary_alone(path, result)
    return [path], []


def _vocabulary_alone(path: Path, result: Validation) -> list[Path]:
    """A vocabulary file checked against the criteria directory it sits in (loaded as a library:
    the vocabulary is part of it); [path] when it is valid, its problems recorded otherwise."""
    directory = path.resolve().parent.parent
    try:
        result.libraries[directory] = load_library(directory)
    except CriteriaLibraryError as exc:
        mine = [e for e in exc.errors if e.path.resolve() == path.resolve()]
        if mine:
            result.problems.extend(mine)
            return []
        others = sorted({e.path.name for e in exc.errors})
        result.problems.append(VocabularyError(path, "", f"the criteria library it serves ({directory}) does not "
                                                         f"load ({', '.join(others)}), so it cannot be checked"))
        return []
    return [path]


# -- from a request to its lines' facts: review's own translation (service_layer/lines.py) ---------

def request_lines(message: lines.RequestMessage) -> list[tuple[types_pb2.ServiceLine, LineFacts]]:
    """(service line, LineFacts) as review builds them; an impossible date fact is left out (intake
    would refuse the request; explain still shows what the rest of it gives)."""
    return lines.request_lines(message, drop_impossible_dates=True)


explanation_of = lines.explanation_proto
