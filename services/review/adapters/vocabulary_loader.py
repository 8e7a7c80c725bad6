"""Vocabulary files (YAML) to :class:`~services.review.domain.vocabulary.Vocabulary`, strictly.

A vocabulary lives beside the criteria it serves, in the criteria directory's ``vocabulary/``
folder, and is loaded with the library (:func:`~services.review.adapters.criteria_loader.load_library`)::

    id: spine
    version: "2026.1"
    title: spine imaging and surgery
    owner: the clinical owner who answers for these mappings
    sources: [the public code sets and guidance they rest on]
    mappings:
      - id: cauda-equina-syndrome-coded
        when: {diagnosis: ["G83.4"]}            # or procedure: [codes], or fact: name(s) + value
        then: {fact: suspected_cauda_equina, value: true}   # no value: a synonym, copied
        criteria: [imaging-mri-lumbar-spine]    # optional: only these sets
        source: where the mapping comes from
        note: the clinical owner's note
    examples:
      - name: a worked case
        mapping: cauda-equina-syndrome-coded
        criteria: imaging-mri-lumbar-spine
        diagnoses: ["M54.50", "G83.4"]
        facts: {urinary_retention: true}
        derived: {suspected_cauda_equina: true}
        expect: meets_criteria_urgent
        urgency: expedited                      # optional: standard or expedited

The file's shape is a pydantic model (strict types, unknown keys refused, duplicate keys refused by
the platform's YAML loader); then the domain checks the patterns, ids and triggers
(:class:`~services.review.domain.vocabulary.InvalidVocabulary`). Checks against the library (unknown
facts, contradictions, the worked examples) run when the library loads. Every problem is a
:class:`VocabularyError`: ``file: field: problem``.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from pathlib import Path
from typing import Annotated, Any

from pydantic import Field

from services.common.config_files import ConfigFileError, FileModel, Text, canonical_json, parse, read_yaml
from services.review.domain.criteria import FactValue, Outcome, normalize_diagnosis
from services.review.domain.vocabulary import (
    CodePattern,
    FactMapping,
    InvalidVocabulary,
    Trigger,
    Vocabulary,
    VocabularyExample,
)

VOCABULARY_DIR = "vocabulary"
"""The criteria directory's folder of vocabulary files."""

Scalar = bool | int | float | str | dt.date


class VocabularyError(ConfigFileError):
    """One problem in one vocabulary file: str is ``"file.yaml: field.path: problem"``."""


class WhenModel(FileModel):
    diagnosis: Annotated[list[Text], Field(min_length=1)] | None = None
    except_: Annotated[list[Text] | None, Field(alias="except")] = None
    procedure: Annotated[list[Text], Field(min_length=1)] | None = None
    fact: Text | Annotated[list[Text], Field(min_length=1)] | None = None
    value: Scalar | None = None


class ThenModel(FileModel):
    fact: Text
    value: Scalar | None = None


class MappingModel(FileModel):
    id: Text
    when: WhenModel
    then: ThenModel
    source: Text
    note: Text
    criteria: Annotated[list[Text], Field(min_length=1)] | None = None


class ExampleModel(FileModel):
    name: Text
    mapping: Text
    criteria: Text
    facts: dict[str, Scalar]
    expect: Text
    derived: dict[str, Scalar]
    diagnoses: Annotated[list[Text], Field(min_length=1)] | None = None
    procedure_code: Text | None = None
    line_of_business: Text | None = None
    missing_facts: list[Text] | None = None
    urgency: Text | None = None
    kept_stated: list[Text] | None = None


class VocabularyFile(FileModel):
    id: Text
    version: Text
    title: Text
    owner: Text
    sources: Annotated[list[Text], Field(min_length=1)]
    mappings: Annotated[list[MappingModel], Field(min_length=1)]
    examples: Annotated[list[ExampleModel], Field(min_length=1)]


def _value(value: Scalar | None) -> FactValue | None:
    if value is None or isinstance(value, bool | str | dt.date):
        return value
    return float(value)


def _patterns(path: Path, texts: list[str] | None, where: str) -> tuple[CodePattern, ...]:
    out = []
    for i, text in enumerate(texts or ()):
        try:
            out.append(CodePattern.parse(text))
        except ValueError as exc:
            raise VocabularyError(path, f"{where}[{i}]", str(exc)) from None
    return tuple(out)


def _mapping(path: Path, raw: MappingModel, where: str) -> FactMapping:
    w = raw.when
    facts = (w.fact,) if isinstance(w.fact, str) else tuple(w.fact or ())
    if w.value is not None and not facts:
        raise VocabularyError(path, f"{where}.when.value", "only a fact trigger takes a value")
    trigger = Trigger(diagnoses=_patterns(path, w.diagnosis, f"{where}.when.diagnosis"),
                      excluded=_patterns(path, w.except_, f"{where}.when.except"),
                      procedures=frozenset(c.strip().upper() for c in w.procedure or ()),
                      facts=facts, fact_value=_value(w.value))
    return FactMapping(id=raw.id, when=trigger, fact=raw.then.fact, value=_value(raw.then.value), source=raw.source,
                       note=raw.note, criteria=frozenset(raw.criteria or ()))


def _example(path: Path, raw: ExampleModel, where: str) -> VocabularyExample:
    try:
        expect = Outcome(raw.expect)
    except ValueError:
        allowed = ", ".join(o.value for o in Outcome)
        raise VocabularyError(path, f"{where}.expect", f"unknown outcome {raw.expect!r} (one of: {allowed})") from None
    facts = {k: v for k, v in ((k, _value(v)) for k, v in raw.facts.items()) if v is not None}
    derived = {k: v for k, v in ((k, _value(v)) for k, v in raw.derived.items()) if v is not None}
    return VocabularyExample(
        name=raw.name, mapping=raw.mapping, criteria=raw.criteria, facts=facts, expect=expect, derived=derived,
        diagnoses=tuple(normalize_diagnosis(d) for d in raw.diagnoses) if raw.diagnoses is not None else None,
        procedure_code=raw.procedure_code, line_of_business=raw.line_of_business,
        missing_facts=tuple(raw.missing_facts) if raw.missing_facts is not None else None,
        urgency=raw.urgency, kept_stated=tuple(raw.kept_stated or ()))


def parse_vocabulary(doc: Any, path: Path) -> Vocabulary:
    """The vocabulary a parsed YAML document describes; raises :class:`VocabularyError`."""
    top = parse(VocabularyFile, doc, path, VocabularyError)
    mappings = tuple(_mapping(path, m, f"mappings[{i}]") for i, m in enumerate(top.mappings))
    examples = tuple(_example(path, e, f"examples[{i}]") for i, e in enumerate(top.examples))
    try:
        return Vocabulary(id=top.id, version=top.version, title=top.title, owner=top.owner,
                          sources=tuple(top.sources), mappings=mappings, examples=examples,
                          content_hash=hashlib.sha256(canonical_json(doc)).hexdigest())
    except InvalidVocabulary as exc:
        raise VocabularyError(path, exc.field, exc.problem) from exc


def load_vocabulary(path: Path | str) -> Vocabulary:
    """Read and validate one vocabulary file (its shape and its own consistency)."""
    file = Path(path)
    return parse_vocabulary(read_yaml(file, VocabularyError), file)


def vocabulary_files(criteria_dir: Path) -> list[Path]:
    """The vocabulary files of a criteria directory (none when it has no ``vocabulary/`` folder)."""
    folder = criteria_dir / VOCABULARY_DIR
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if p.suffix in (".yaml", ".yml") and p.is_file())
