"""Loads members and coverage from a YAML seed file (see deploy/sample/members.yaml), validated by a
typed model before anything is written.

    members:
      - member_id: "MA100001"
        birth_date: "1949-03-06"            # optional
        coverages:
          - line_of_business: medicare_advantage
            plan_id: "H4827-002"
            state: "CA"
            effective: "2025-01-01"
            termination: null               # optional

Unknown keys, duplicate keys, values of the wrong YAML type, an unknown line of business, a bad date
and a member listed twice are refused with a :class:`SeedError`:
``members.yaml: members[3].coverages[0].effective: ...``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

from pydantic import field_validator

from services.common.config_files import ConfigFileError, Date, FileModel, Text, load_model
from services.intake.domain.model import LINES_OF_BUSINESS, Coverage, Member
from services.intake.service_layer.ports import IntakeUnitOfWork


class SeedError(ConfigFileError):
    """A members file problem: the message names the file, the entry and the field."""


class CoverageEntry(FileModel):
    line_of_business: str
    plan_id: str = ""
    state: str = ""
    effective: Date
    termination: Date | None = None

    @field_validator("line_of_business")
    @classmethod
    def _known_line(cls, value: str) -> str:
        if value not in LINES_OF_BUSINESS:
            raise ValueError(f"{value!r} is not one of {', '.join(LINES_OF_BUSINESS)}")
        return value


class MemberEntry(FileModel):
    member_id: Text
    birth_date: Date | None = None
    coverages: list[CoverageEntry] | None = None


class MembersFile(FileModel):
    members: list[MemberEntry]


def read_members(path: Path) -> list[Member]:
    """Every member of the file with its coverages; raises :class:`SeedError`."""
    doc = load_model(MembersFile, path, SeedError)
    first: dict[str, int] = {}
    out = []
    for i, member in enumerate(doc.members):
        if member.member_id in first:
            raise SeedError(path, f"members[{i}].member_id",
                            f"{member.member_id!r} is already listed at members[{first[member.member_id]}]")
        first[member.member_id] = i
        coverages = [Coverage(member_id=member.member_id, line_of_business=c.line_of_business, plan_id=c.plan_id,
                              state=c.state, effective=c.effective, termination=c.termination)
                     for c in member.coverages or ()]
        out.append(Member(member.member_id, member.birth_date, tuple(coverages)))
    return out


def store_members(members: Sequence[Member], uow_factory: Callable[[], IntakeUnitOfWork]) -> None:
    """Upsert ``members`` in one transaction."""
    with uow_factory() as uow:
        for member in members:
            uow.members.save(member)
        uow.commit()
