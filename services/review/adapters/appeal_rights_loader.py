"""The appeal rights table (YAML, ``services/review/policy/appeal-rights.yaml``) to
:class:`~services.review.domain.appeals.AppealRights`, strictly: unknown, missing or duplicate keys,
unknown lines of business or appellants, and two entries for one line of business and state are
refused with a :class:`PolicyFileError` naming the file and the field."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from pydantic import Field

from services.common.config_files import FileModel, Text, parse, read_yaml
from services.review.adapters.policy_loader import PolicyFileError
from services.review.domain.appeals import AppealRight, AppealRights, InvalidAppealRights

DEFAULT_APPEAL_RIGHTS = Path(__file__).resolve().parents[1] / "policy" / "appeal-rights.yaml"


class AppealRightEntry(FileModel):
    id: Text
    line_of_business: Text
    states: list[Text] = []
    level: Text
    filing_window_days: Annotated[int, Field(ge=1, le=3650)]
    who_may_file: Annotated[list[Text], Field(min_length=1)]
    decision_time: Text
    next_level: Text
    file_with: Text
    citation: Text
    forwards_upheld_to: str = ""


class AppealRightsFile(FileModel):
    version: Text
    regimes: Annotated[list[AppealRightEntry], Field(min_length=1)]


def parse_appeal_rights(doc: object, path: Path) -> AppealRights:
    top = parse(AppealRightsFile, doc, path, PolicyFileError)
    rights = [AppealRight(regime=e.id, line_of_business=e.line_of_business,
                          states=frozenset(s.upper() for s in e.states), level=e.level,
                          filing_window_days=e.filing_window_days, who_may_file=tuple(e.who_may_file),
                          decision_time=" ".join(e.decision_time.split()), next_level=" ".join(e.next_level.split()),
                          file_with=e.file_with, citation=" ".join(e.citation.split()),
                          forwards_upheld_to=e.forwards_upheld_to)
              for e in top.regimes]
    try:
        return AppealRights(rights)
    except InvalidAppealRights as exc:
        raise PolicyFileError(path, exc.field, exc.problem) from exc


def load_appeal_rights(path: Path | str = DEFAULT_APPEAL_RIGHTS) -> AppealRights:
    file = Path(path)
    return parse_appeal_rights(read_yaml(file, PolicyFileError), file)
