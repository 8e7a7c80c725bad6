"""Configuration files: one strict YAML loader, typed models, and ``file: field: problem`` errors
under ConfigurationError, for every file a service reads."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from services.common.config_files import ConfigFileError, load_yaml
from services.common.credentials import CredentialsFileError, load_credentials
from services.common.errors import ConfigurationError
from services.intake.adapters.seed import SeedError, read_members
from services.review.adapters.criteria_loader import CriteriaError, load_criteria
from services.review.adapters.holiday_calendars import CalendarFileError, load_calendar
from services.review.adapters.policy_loader import PolicyFileError, load_no_prior_auth
from services.review.adapters.reviewers_loader import ReviewerFileError, load_reviewers
from services.review.domain.workflow import Role
from tests.conftest import REPO

SAMPLE = REPO / "deploy" / "sample"


def write(tmp_path: Path, text: str, name: str = "file.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


# -- the YAML loader -------------------------------------------------------------------------------------


def test_a_key_given_twice_is_refused_with_its_line() -> None:
    with pytest.raises(yaml.YAMLError, match=r"duplicate key 'a'") as caught:
        load_yaml("a: 1\nb:\n  c: 2\na: 3\n")
    assert caught.value.problem_mark.line == 3  # type: ignore[attr-defined]
    with pytest.raises(yaml.YAMLError, match=r"duplicate key 'c'"):
        load_yaml("a: 1\nb: {c: 2, c: 3}\n")


def test_an_impossible_date_is_refused_with_its_line() -> None:
    with pytest.raises(yaml.YAMLError, match=r"'2026-02-30' is not a date: day is out of range"):
        load_yaml("when: 2026-02-30\n")


# Every loader of a file a service reads: (loader, its error, a file with a key given twice).
LOADERS: list[tuple[Callable[[Path], Any], type[ConfigFileError], str]] = [
    (load_credentials, CredentialsFileError, "principals:\n  - id: a\n    id: b\n"),
    (load_reviewers, ReviewerFileError, "reviewers: []\nreviewers: []\n"),
    (read_members, SeedError, "members: []\nmembers: []\n"),
    (load_no_prior_auth, PolicyFileError, "version: '1'\nentries: []\nentries: []\n"),
    (load_calendar, CalendarFileError, "name: x\nname: y\n"),
    (load_criteria, CriteriaError, "id: x\nid: y\n"),
]


@pytest.mark.parametrize(("load", "error", "duplicated"), LOADERS)
def test_every_loader_refuses_duplicate_keys_and_reports_file_field_problem(
        tmp_path: Path, load: Callable[[Path], Any], error: type[ConfigFileError], duplicated: str) -> None:
    assert issubclass(error, ConfigurationError)
    with pytest.raises(error, match=r"^file\.yaml: not valid YAML: duplicate key '\w+' \(line \d+, column \d+\)$"):
        load(write(tmp_path, duplicated))
    with pytest.raises(error, match=r"^absent\.yaml: cannot read: No such file or directory$"):
        load(tmp_path / "absent.yaml")
    with pytest.raises(error, match=r"^file\.yaml: not valid YAML: "):
        load(write(tmp_path, "a: [1, 2\n"))


# -- reviewers -------------------------------------------------------------------------------------------

REVIEWER = """reviewers:
  - reviewer_id: rn-1
    name: Nurse One
    role: nurse
    credential: RN
    specialties: [general]
    licence_states: [TX]
    lines_of_business: [commercial]
"""


def test_the_sample_reviewers_load() -> None:
    reviewers = load_reviewers(SAMPLE / "reviewers.yaml")
    assert len(reviewers) >= 5
    assert {r.role for r in reviewers} >= {Role.NURSE, Role.PHYSICIAN, Role.SUPERVISOR}


def test_a_reviewer_gets_the_defaults(tmp_path: Path) -> None:
    (reviewer,) = load_reviewers(write(tmp_path, REVIEWER))
    assert reviewer.role is Role.NURSE
    assert reviewer.capacity == 10
    assert reviewer.active
    assert reviewer.specialties == frozenset({"general"})
    assert reviewer.licence_states == frozenset({"TX"})


@pytest.mark.parametrize(("change", "expected"), [
    (("role: nurse", "role: nures"),
     "file.yaml: reviewers[0].role: 'nures' is not one of 'nurse', 'physician', 'adjuster', 'supervisor' or "
     "'case_manager'"),
    (("    credential: RN\n", ""), "file.yaml: reviewers[0].credential: is required"),
    (("name: Nurse One", "name: '  '"), "file.yaml: reviewers[0].name: must not be empty"),
    (("credential: RN", "credential: RN\n    capacity: ten"),
     "file.yaml: reviewers[0].capacity: expected a whole number, got text ('ten')"),
    (("credential: RN", "credential: RN\n    capacity: -1"),
     "file.yaml: reviewers[0].capacity: must be greater than or equal to 0, got -1"),
    (("credential: RN", "credential: RN\n    active: 'yes'"),
     "file.yaml: reviewers[0].active: expected true or false, got text ('yes')"),
    (("specialties: [general]", "specialties: general"),
     "file.yaml: reviewers[0].specialties: expected a list, got text ('general')"),
    (("credential: RN", "credential: RN\n    licenses: [TX]"),
     "file.yaml: reviewers[0].licenses: unknown key (allowed: reviewer_id, name, role, credential, specialties, "
     "licence_states, lines_of_business, capacity, active)"),
])
def test_a_bad_reviewer_is_refused_precisely(tmp_path: Path, change: tuple[str, str], expected: str) -> None:
    with pytest.raises(ReviewerFileError) as caught:
        load_reviewers(write(tmp_path, REVIEWER.replace(*change)))
    assert str(caught.value) == expected


def test_a_reviewer_listed_twice_is_refused(tmp_path: Path) -> None:
    twice = REVIEWER + REVIEWER.removeprefix("reviewers:\n")
    with pytest.raises(ReviewerFileError, match=r"^file\.yaml: reviewers\[1\]\.reviewer_id: 'rn-1' is already "
                                                r"listed at reviewers\[0\]$"):
        load_reviewers(write(tmp_path, twice))


# -- members ---------------------------------------------------------------------------------------------

MEMBER = """members:
  - member_id: "M1"
    birth_date: "1950-02-01"
    coverages:
      - {line_of_business: commercial, plan_id: "P-1", state: "TX", effective: 2026-01-01, termination: null}
"""


def test_the_sample_and_test_members_load() -> None:
    assert len(read_members(SAMPLE / "members.yaml")) > 10
    assert read_members(REPO / "tests" / "data" / "members.yaml")


def test_a_member_reads_dates_quoted_or_not(tmp_path: Path) -> None:
    (member,) = read_members(write(tmp_path, MEMBER))
    (coverage,) = member.coverages
    assert member.member_id == "M1"
    assert member.birth_date is not None
    assert member.birth_date.isoformat() == "1950-02-01"
    assert coverage.effective.isoformat() == "2026-01-01"
    assert coverage.termination is None


@pytest.mark.parametrize(("change", "expected"), [
    (("commercial", "comercial"), "file.yaml: members[0].coverages[0].line_of_business: 'comercial' is not one of "
                                  "medicare_advantage, medicaid, commercial, workers_comp"),
    (("effective: 2026-01-01", "effective: '2026-13-01'"),
     "file.yaml: members[0].coverages[0].effective: '2026-13-01' is not a date (YYYY-MM-DD)"),
    (("effective: 2026-01-01, ", ""), "file.yaml: members[0].coverages[0].effective: is required"),
    (('member_id: "M1"', "member_id: 1001"),
     'file.yaml: members[0].member_id: expected text, got the number 1001 (YAML reads it as a number: '
     'quote it, "1001")'),
    (('birth_date: "1950-02-01"', "born: 1950-02-01"),
     "file.yaml: members[0].born: unknown key (allowed: member_id, birth_date, coverages)"),
])
def test_a_bad_member_is_refused_precisely(tmp_path: Path, change: tuple[str, str], expected: str) -> None:
    with pytest.raises(SeedError) as caught:
        read_members(write(tmp_path, MEMBER.replace(*change)))
    assert str(caught.value) == expected


def test_a_member_listed_twice_is_refused(tmp_path: Path) -> None:
    with pytest.raises(SeedError, match=r"members\[1\]\.member_id: 'M1' is already listed at members\[0\]"):
        read_members(write(tmp_path, MEMBER + MEMBER.removeprefix("members:\n")))


# -- the shipped files -----------------------------------------------------------------------------------


def test_every_shipped_configuration_file_loads() -> None:
    services = REPO / "services"
    for path in sorted((services / "review" / "calendars").glob("*.yaml")):
        load_calendar(path)
    for path in sorted((services / "review" / "criteria").glob("*.yaml")):
        load_criteria(path)
    load_no_prior_auth(services / "review" / "policy" / "no-prior-auth.yaml")
