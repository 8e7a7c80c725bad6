"""The reviewer directory's seed file (YAML), validated by a typed model.

    reviewers:
      - reviewer_id: rn-alvarez
        name: Maria Alvarez
        role: nurse                      # nurse | physician | adjuster | supervisor | case_manager
        credential: RN
        specialties: [advanced_imaging, general]
        licence_states: [TX, CA]
        lines_of_business: [commercial, medicaid, workers_comp]
        capacity: 10                     # default 10
        active: true                     # default true

Unknown keys, duplicate keys, values of the wrong YAML type, an unknown role and a reviewer listed
twice are refused with a :class:`ReviewerFileError`: ``reviewers.yaml: reviewers[2].role: ...``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from pydantic import Field, Strict

from services.common.config_files import ConfigFileError, FileModel, Text, load_model
from services.review.domain.workflow import Reviewer, Role


class ReviewerFileError(ConfigFileError):
    """A seed file problem: the message names the file, the entry and the field."""


class ReviewerEntry(FileModel):
    reviewer_id: Text
    name: Text
    role: Annotated[Role, Strict(False)]  # YAML gives the role's text; the enum is its value
    credential: Text
    specialties: list[Text] | None = None
    licence_states: list[Text] | None = None
    lines_of_business: list[Text] | None = None
    capacity: Annotated[int, Field(ge=0)] = 10
    active: bool = True

    def to_domain(self) -> Reviewer:
        return Reviewer(reviewer_id=self.reviewer_id, name=self.name, role=self.role,
                        specialties=frozenset(self.specialties or ()),
                        licence_states=frozenset(self.licence_states or ()),
                        lines_of_business=frozenset(self.lines_of_business or ()),
                        capacity=self.capacity, credential=self.credential, active=self.active)


class ReviewersFile(FileModel):
    reviewers: list[ReviewerEntry]


def load_reviewers(path: Path | str) -> list[Reviewer]:
    """The reviewers of a seed file, in file order; raises :class:`ReviewerFileError`."""
    doc = load_model(ReviewersFile, path, ReviewerFileError)
    first: dict[str, int] = {}
    for i, entry in enumerate(doc.reviewers):
        if entry.reviewer_id in first:
            raise ReviewerFileError(path, f"reviewers[{i}].reviewer_id",
                                    f"{entry.reviewer_id!r} is already listed at reviewers[{first[entry.reviewer_id]}]")
        first[entry.reviewer_id] = i
    return [entry.to_domain() for entry in doc.reviewers]
