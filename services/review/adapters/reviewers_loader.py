"""The reviewer directory's seed file (YAML), strictly.

    reviewers:
      - reviewer_id: rn-alvarez
        name: Maria Alvarez
        role: nurse                      # nurse | physician | adjuster | supervisor
        credential: RN
        specialties: [advanced_imaging, general]
        licence_states: [TX, CA]
        lines_of_business: [commercial, medicaid, workers_comp]
        capacity: 10
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from services.review.domain.workflow import Reviewer, Role

REQUIRED = ("reviewer_id", "name", "role", "credential")
OPTIONAL = ("specialties", "licence_states", "lines_of_business", "capacity", "active")


class ReviewerFileError(ValueError):
    """A seed file problem: the message names the file, the entry and the field."""


def _texts(value: Any, where: str) -> frozenset[str]:
    if value is None:
        return frozenset()
    if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
        raise ReviewerFileError(f"{where}: expected a list of text")
    return frozenset(v.strip() for v in value)


def load_reviewers(path: Path | str) -> list[Reviewer]:
    file = Path(path)
    try:
        doc = yaml.safe_load(file.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise ReviewerFileError(f"{file}: cannot read: {exc}") from exc
    entries = doc.get("reviewers") if isinstance(doc, dict) else None
    if not isinstance(entries, list):
        raise ReviewerFileError(f"{file}: expected a mapping with a 'reviewers' list")
    out: list[Reviewer] = []
    seen: set[str] = set()
    for i, e in enumerate(entries):
        where = f"{file.name}: reviewers[{i}]"
        if not isinstance(e, dict):
            raise ReviewerFileError(f"{where}: expected a mapping")
        for key in e:
            if key not in REQUIRED + OPTIONAL:
                raise ReviewerFileError(f"{where}.{key}: unknown key (allowed: {', '.join(REQUIRED + OPTIONAL)})")
        for key in REQUIRED:
            if not isinstance(e.get(key), str) or not e[key].strip():
                raise ReviewerFileError(f"{where}.{key}: required text")
        try:
            role = Role(e["role"])
        except ValueError:
            raise ReviewerFileError(f"{where}.role: {e['role']!r} is not one of "
                                    f"{', '.join(r.value for r in Role)}") from None
        capacity = e.get("capacity", 10)
        if not isinstance(capacity, int) or isinstance(capacity, bool):
            raise ReviewerFileError(f"{where}.capacity: expected a whole number")
        active = e.get("active", True)
        if not isinstance(active, bool):
            raise ReviewerFileError(f"{where}.active: expected true or false")
        if e["reviewer_id"] in seen:
            raise ReviewerFileError(f"{where}.reviewer_id: {e['reviewer_id']!r} is listed twice")
        seen.add(e["reviewer_id"])
        out.append(Reviewer(
            reviewer_id=e["reviewer_id"].strip(), name=e["name"].strip(), role=role,
            specialties=_texts(e.get("specialties"), f"{where}.specialties"),
            licence_states=_texts(e.get("licence_states"), f"{where}.licence_states"),
            lines_of_business=_texts(e.get("lines_of_business"), f"{where}.lines_of_business"),
            capacity=capacity, credential=e["credential"].strip(), active=active))
    return out
