"""Loads members and coverage from a YAML seed file (see deploy/sample/members.yaml)."""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from services.intake.domain.model import LINES_OF_BUSINESS, Coverage, Member
from services.intake.service_layer.ports import IntakeUnitOfWork

logger = logging.getLogger(__name__)


class SeedError(ValueError):
    pass


def _date(value: Any, where: str) -> dt.date | None:
    if value is None:
        return None
    if isinstance(value, dt.date):
        return value
    try:
        return dt.date.fromisoformat(str(value))
    except ValueError as exc:
        raise SeedError(f"{where}: {value!r} is not a YYYY-MM-DD date") from exc


def load_members(path: Path, uow_factory: Callable[[], IntakeUnitOfWork]) -> int:
    """Upsert every member of the file; returns how many. Errors name the entry."""
    try:
        document = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise SeedError(f"{path}: {exc}") from exc
    members = (document or {}).get("members")
    if not isinstance(members, list):
        raise SeedError(f"{path}: expected a top-level 'members' list")
    with uow_factory() as uow:
        for i, entry in enumerate(members):
            where = f"{path}: members[{i}]"
            member_id = str(entry.get("member_id", ""))
            if not member_id:
                raise SeedError(f"{where}.member_id: required")
            coverages = []
            for j, cov in enumerate(entry.get("coverages") or []):
                cwhere = f"{where}.coverages[{j}]"
                lob = cov.get("line_of_business")
                if lob not in LINES_OF_BUSINESS:
                    raise SeedError(f"{cwhere}.line_of_business: {lob!r} not one of {LINES_OF_BUSINESS}")
                effective = _date(cov.get("effective"), f"{cwhere}.effective")
                if effective is None:
                    raise SeedError(f"{cwhere}.effective: required")
                coverages.append(Coverage(member_id=member_id, line_of_business=lob,
                                          plan_id=str(cov.get("plan_id", "")), state=str(cov.get("state", "")),
                                          effective=effective,
                                          termination=_date(cov.get("termination"), f"{cwhere}.termination")))
            uow.members.save(Member(member_id, _date(entry.get("birth_date"), f"{where}.birth_date"),
                                    tuple(coverages)))
        uow.commit()
    logger.info("loaded %d members from %s", len(members), path)
    return len(members)
