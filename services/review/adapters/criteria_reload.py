"""Loading a changed criteria library while the service runs.

:class:`CriteriaReloader` owns the evaluator the handlers use. :meth:`CriteriaReloader.check`
compares the criteria directory's fingerprint (file names, modification times and sizes) with the
last one it loaded; when it changed, it loads the whole library again, compiles the new versions
into the running rules engine, and only then replaces the evaluator, in one reference assignment.
The handlers ask for :meth:`CriteriaReloader.current` once per batch, so a batch in flight
finishes on the library it started with, and the next batch uses the new one.

A library that does not load (a malformed file, a changed file that kept its version, a ruleset
the engine refuses) changes nothing: the old library stays in use, the problem is logged at ERROR
naming the file and field, and the next change of the directory is tried again.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Protocol

from services.review.adapters.criteria_loader import CriteriaLibrary, load_library
from services.review.adapters.vocabulary_loader import VOCABULARY_DIR
from services.review.domain.criteria import CriteriaSet
from services.review.service_layer.ports import Evaluator

logger = logging.getLogger(__name__)

Fingerprint = tuple[tuple[str, int, int], ...]


class RulesetCompiler(Protocol):
    def add(self, criteria: Iterable[CriteriaSet]) -> object:
        """Compile the rulesets of ``criteria`` (those already compiled are kept); raise when one
        cannot be compiled."""
        ...


def fingerprint(directory: Path) -> Fingerprint:
    """Names, modification times (ns) and sizes of the criteria files and of the vocabulary files
    beside them (``vocabulary/``): what a change changes."""
    found = []
    for folder, prefix in ((directory, ""), (directory / VOCABULARY_DIR, f"{VOCABULARY_DIR}/")):
        try:
            entries = list(folder.iterdir())
        except OSError:
            continue
        for path in entries:
            if path.suffix not in (".yaml", ".yml"):
                continue
            try:
                stat = path.stat()
            except OSError:  # removed between listing and stat: the next check sees the new state
                continue
            found.append((prefix + path.name, stat.st_mtime_ns, stat.st_size))
    return tuple(sorted(found))


def _changes(old: CriteriaLibrary, new: CriteriaLibrary) -> list[str]:
    before = {c.id: c for c in old.current()}
    after = {c.id: c for c in new.current()}
    lines = []
    for cid in sorted(before.keys() | after.keys()):
        was, now = before.get(cid), after.get(cid)
        if was is None and now is not None:
            lines.append(f"{cid} (new) → {now.version}")
        elif now is None and was is not None:
            lines.append(f"{cid} {was.version} → (removed)")
        elif was is not None and now is not None and was.key != now.key:
            lines.append(f"{cid} {was.version} → {now.version}")
    vocabulary_before = {v.id: v for v in old.vocabularies}
    vocabulary_after = {v.id: v for v in new.vocabularies}
    for vid in sorted(vocabulary_before.keys() | vocabulary_after.keys()):
        was_v, now_v = vocabulary_before.get(vid), vocabulary_after.get(vid)
        if was_v is None or now_v is None or was_v.content_hash != now_v.content_hash:
            lines.append(f"vocabulary {vid} {was_v.version if was_v else '(new)'} → "
                         f"{now_v.version if now_v else '(removed)'}"
                         + (" (content changed)" if was_v and now_v and was_v.version == now_v.version else ""))
    return lines


class CriteriaReloader:
    """The current criteria evaluator, replaced when the criteria directory changes."""

    def __init__(self, directory: Path, library: CriteriaLibrary, compiler: RulesetCompiler,
                 make_evaluator: Callable[[CriteriaLibrary], Evaluator], *,
                 load: Callable[[Path], CriteriaLibrary] = load_library) -> None:
        self._directory = directory
        self._compiler = compiler
        self._make_evaluator = make_evaluator
        self._load = load
        self._library = library
        self._evaluator = make_evaluator(library)
        self._loaded = fingerprint(directory)
        self._failed: Fingerprint | None = None
        self._lock = threading.Lock()  # one check at a time; readers never wait

    @property
    def library(self) -> CriteriaLibrary:
        return self._library

    def current(self) -> Evaluator:
        """The evaluator of the newest library that loaded."""
        return self._evaluator

    def check(self) -> bool:
        """Load the library again if the directory changed since the last attempt; True when a
        new library is now in use."""
        with self._lock:
            seen = fingerprint(self._directory)
            if seen in (self._loaded, self._failed):
                return False
            try:
                library = self._load(self._directory)
                self._compiler.add(library.all())
            except Exception as exc:  # noqa: BLE001 - whatever went wrong, the old library keeps serving
                self._failed = seen
                logger.error("criteria reload from %s failed; still using the previous library: %s",
                             self._directory, exc)
                return False
            old = self._library
            # Compiled first, swapped last: one reference assignment, so no batch sees half a library.
            self._library = library
            self._evaluator = self._make_evaluator(library)
            self._loaded, self._failed = seen, None
        changes = _changes(old, library)
        for change in changes:
            logger.info("criteria reloaded: %s", change)
        if not changes:
            logger.info("criteria reloaded from %s: files changed, current versions unchanged", self._directory)
        return True
