"""The bundled sample data: NPI check digits, the workload's shape and mix, the members file, and
that the committed files are what deploy/sample/make_sample.py produces."""

from __future__ import annotations

import datetime as dt
import functools
import importlib.util
import json
import random
import re
import sys
from collections import Counter
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml
from google.protobuf import json_format
from ur.common.v1 import types_pb2
from ur.intake.v1 import intake_pb2

from services.common.proto_enums import to_name
from services.intake.domain.codes import is_npi as intake_is_npi
from services.intake.domain.model import Coverage, check_eligibility, validate
from services.intake.entrypoints.mapping import to_domain
from services.review.adapters.criteria_loader import CriteriaLibrary, load_library
from services.review.bootstrap import DEFAULT_CRITERIA_DIR
from services.review.domain.criteria import Outcome, PythonMatcher, evaluate
from services.review.domain.decisions import decide_line
from services.review.service_layer.lines import request_lines

REPO = Path(__file__).resolve().parents[3]
SAMPLE = REPO / "deploy" / "sample"


def _load_make_sample() -> ModuleType:
    spec = importlib.util.spec_from_file_location("make_sample", SAMPLE / "make_sample.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("make_sample", module)  # dataclasses look their module up by name
    spec.loader.exec_module(module)
    return module


make_sample = _load_make_sample()


@pytest.fixture(scope="module")
def workload() -> list[dict[str, Any]]:
    entries: list[dict[str, Any]] = json.loads((SAMPLE / "workload.json").read_text())
    return entries


@pytest.fixture(scope="module")
def expected() -> list[str]:
    categories: list[str] = json.loads((SAMPLE / "workload.expected.json").read_text())
    return categories


@pytest.fixture(scope="module")
def members() -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = yaml.safe_load((SAMPLE / "members.yaml").read_text())["members"]
    return found


# -- NPI ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("npi", ["1234567893", "1245319599"])
def test_known_valid_npis_pass(npi: str) -> None:
    assert make_sample.is_valid_npi(npi)
    assert make_sample.npi_check_digit(npi[:9]) == int(npi[9])


def test_cms_example_check_digit_is_3() -> None:
    # The CMS check-digit standard's worked example: 123456789 -> 3.
    assert make_sample.npi_check_digit("123456789") == 3


@pytest.mark.parametrize("npi", ["1234567890", "1234567894", "123456789", "12345678931", "12345678a3", "",
                                 # fullwidth digits (str.isdigit accepts them):
                                 "\uff11\uff12\uff13\uff14\uff15\uff16\uff17\uff18\uff19\uff13"])
def test_wrong_check_digit_or_shape_fails(npi: str) -> None:
    assert not make_sample.is_valid_npi(npi)


def test_every_single_digit_change_is_detected() -> None:
    npi = "1234567893"
    for position in range(10):
        for digit in "0123456789":
            if digit != npi[position]:
                assert not make_sample.is_valid_npi(npi[:position] + digit + npi[position + 1:])


def test_exactly_one_check_digit_fits_and_agrees_with_intake() -> None:
    rng = random.Random(7)
    for _ in range(500):
        payload = f"{rng.randrange(10**9):09d}"
        valid = [d for d in "0123456789" if make_sample.is_valid_npi(payload + d)]
        assert valid == [str(make_sample.npi_check_digit(payload))]
        assert all(intake_is_npi(payload + d) == make_sample.is_valid_npi(payload + d) for d in "0123456789")


def test_check_digit_rejects_a_payload_that_is_not_nine_digits() -> None:
    with pytest.raises(ValueError, match="nine digits"):
        make_sample.npi_check_digit("12345678")


# -- the workload ------------------------------------------------------------------------------------

def test_every_entry_is_a_submit_request(workload: list[dict[str, Any]]) -> None:
    for i, entry in enumerate(workload):
        request = json_format.ParseDict(entry, intake_pb2.SubmitRequestRequest())
        assert request.idempotency_key, i
        # Proto JSON form with proto field names: a round trip gives the entry back.
        assert json_format.MessageToDict(request, preserving_proto_field_name=True) == entry


def test_category_mix(workload: list[dict[str, Any]], expected: list[str]) -> None:
    assert len(workload) == len(expected) >= 240
    counts = Counter(expected)
    assert set(counts) <= set(make_sample.CATEGORIES)
    total = len(expected)
    assert total - counts["invalid"] >= 200
    assert 0.50 <= counts["meets"] / total <= 0.60
    assert 0.15 <= counts["refer"] / total <= 0.25
    assert 0.05 <= counts["missing_info"] / total <= 0.11
    assert 0.04 <= counts["invalid"] / total <= 0.08
    assert 0.03 <= counts["ineligible"] / total <= 0.07
    assert 0.02 <= counts["replay"] / total <= 0.06


def test_about_15_percent_expedited(workload: list[dict[str, Any]]) -> None:
    expedited = sum(1 for r in workload if r["urgency"] == "URGENCY_EXPEDITED")
    assert 0.10 <= expedited / len(workload) <= 0.20


def test_keys_are_unique_except_replays_which_repeat_an_earlier_request_exactly(
        workload: list[dict[str, Any]], expected: list[str]) -> None:
    first: dict[str, int] = {}
    for i, (entry, category) in enumerate(zip(workload, expected, strict=True)):
        key = entry["idempotency_key"]
        if category == "replay":
            assert key in first, f"replay [{i}] repeats no earlier request"
            assert entry == workload[first[key]]
            assert expected[first[key]] in ("meets", "refer", "missing_info")
        else:
            assert key not in first, f"[{i}] reuses the key of [{first.get(key)}]"
            first[key] = i


def test_lines_are_numbered_with_one_to_three_lines_and_service_dates_dec_to_feb(
        workload: list[dict[str, Any]], expected: list[str]) -> None:
    for entry, category in zip(workload, expected, strict=True):
        lines = entry["service_lines"]
        assert 1 <= len(lines) <= 3
        assert [line["line_number"] for line in lines] == list(range(1, len(lines) + 1))
        for line in lines:
            start = dt.date(**line["start_date"])
            assert dt.date(2026, 12, 1) <= start <= dt.date(2027, 2, 28)
            if category != "invalid":
                assert start <= dt.date(**line["end_date"]) <= dt.date(2027, 2, 28)
        assert entry["diagnoses"][0].get("primary") is True


def _coverages(members: list[dict[str, Any]]) -> dict[str, list[Coverage]]:
    def day(value: str | None) -> dt.date | None:
        return None if value is None else dt.date.fromisoformat(value)

    return {m["member_id"]: [Coverage(m["member_id"], c["line_of_business"], c["plan_id"], c["state"],
                                      dt.date.fromisoformat(c["effective"]), day(c["termination"]))
                             for c in m["coverages"]] for m in members}


def test_intake_rules_agree_with_the_intended_categories(
        workload: list[dict[str, Any]], expected: list[str], members: list[dict[str, Any]]) -> None:
    """Intake's own validation and eligibility rules (pure domain code) sort the workload exactly as
    the generator meant: invalid ones fail validation, ineligible ones fail eligibility, the rest pass."""
    coverages = _coverages(members)
    for i, (entry, category) in enumerate(zip(workload, expected, strict=True)):
        request = to_domain(json_format.ParseDict(entry, intake_pb2.SubmitRequestRequest()))
        violations = validate(request)
        if category == "invalid":
            assert violations, f"[{i}] was meant to be invalid"
            continue
        assert not violations, f"[{i}] {violations}"
        eligibility = check_eligibility(request, coverages.get(request.member_id, []),
                                        request.member_id in coverages)
        assert eligibility.eligible == (category != "ineligible"), f"[{i}] {eligibility.reason}"


def test_invalid_requests_cover_each_kind_of_defect(
        workload: list[dict[str, Any]], expected: list[str]) -> None:
    fields: Counter[str] = Counter()
    for entry, category in zip(workload, expected, strict=True):
        if category == "invalid":
            request = to_domain(json_format.ParseDict(entry, intake_pb2.SubmitRequestRequest()))
            fields.update(re.sub(r"\[\d+\]", "[]", v.field) for v in validate(request))
    assert set(fields) >= {"requesting_provider.npi", "service_lines[].procedure_code", "diagnoses[].code",
                           "service_lines[].units", "service_lines[].end_date"}


def test_ineligible_requests_include_unknown_and_terminated_members(
        workload: list[dict[str, Any]], expected: list[str], members: list[dict[str, Any]]) -> None:
    coverages = _coverages(members)
    ineligible = [e for e, c in zip(workload, expected, strict=True) if c == "ineligible"]
    assert any(e["member_id"] not in coverages for e in ineligible)
    assert any(e["member_id"] in coverages for e in ineligible)


def test_no_member_gets_the_same_code_twice_so_nothing_looks_like_a_duplicate(
        workload: list[dict[str, Any]], expected: list[str]) -> None:
    seen: set[tuple[str, str]] = set()
    for entry, category in zip(workload, expected, strict=True):
        if category in ("meets", "refer", "missing_info"):
            for line in entry["service_lines"]:
                pair = (entry["member_id"], line["procedure_code"])
                assert pair not in seen
                seen.add(pair)


LUMBAR = {"72148", "72149", "72158"}
RED_FLAGS = ("suspected_cauda_equina", "suspected_cancer", "suspected_infection", "suspected_fracture",
             "progressive_neurologic_deficit")


def _lumbar_category(facts: dict[str, Any]) -> str:
    """The lumbar spine MRI rule as the brief states it (independent of the generator)."""
    if any(facts.get(flag) is True for flag in RED_FLAGS):
        return "meets"
    duration, therapy = facts.get("symptom_duration_weeks"), facts.get("conservative_therapy_weeks")
    if duration is None or therapy is None:
        return "missing_info"
    return "meets" if duration >= 6 and therapy >= 6 else "refer"


def test_lumbar_mri_requests_follow_the_rule(workload: list[dict[str, Any]], expected: list[str]) -> None:
    checked = 0
    for entry, category in zip(workload, expected, strict=True):
        codes = {line["procedure_code"] for line in entry["service_lines"]}
        if category not in ("meets", "refer", "missing_info") or not codes <= LUMBAR:
            continue
        facts = {f["name"]: f.get("bool_value", f.get("number_value")) for f in entry.get("clinical_facts", [])}
        assert _lumbar_category(facts) == category, entry["idempotency_key"]
        assert {d["code"] for d in entry["diagnoses"]} <= {"M54.50", "M54.16", "M51.16", "M48.062"}
        checked += 1
    assert checked >= 50


def _review_category(request: intake_pb2.SubmitRequestRequest) -> tuple[str, list[str | None]]:
    """What the review service's criteria library and decision rules make of a request, as a
    workload category, with the criteria id each line was evaluated against."""
    library = _library()
    lob = to_name(types_pb2.LineOfBusiness, request.coverage.line_of_business)
    assert lob is not None
    outcomes, criteria_ids = set(), []
    for line, line_facts in request_lines(request):  # the review service's own translation
        criteria = library.select(line_facts)
        evaluation = evaluate(criteria, line_facts, PythonMatcher()) if criteria is not None else None
        outcomes.add(decide_line(evaluation, line.procedure_code, lob, []).outcome)
        criteria_ids.append(criteria.id if criteria is not None else None)
    if outcomes <= {Outcome.MEETS_CRITERIA, Outcome.MEETS_CRITERIA_URGENT}:
        return "meets", criteria_ids
    if Outcome.PEND_MISSING_INFORMATION in outcomes:
        return "missing_info", criteria_ids
    return ("refer" if outcomes == {Outcome.REFER_TO_NURSE} else str(sorted(o.value for o in outcomes))), criteria_ids


@functools.cache
def _library() -> CriteriaLibrary:
    return load_library(DEFAULT_CRITERIA_DIR)


def test_review_criteria_give_the_intended_outcome(workload: list[dict[str, Any]], expected: list[str]) -> None:
    """The review service's own criteria library (services/review/criteria) and decision rules
    evaluate each eligible, valid request as the generator meant it. When this fails after a
    criteria change, align PROFILES in deploy/sample/make_sample.py and regenerate."""
    used: Counter[str | None] = Counter()
    for i, (entry, category) in enumerate(zip(workload, expected, strict=True)):
        if category not in ("meets", "refer", "missing_info"):
            continue
        got, criteria_ids = _review_category(json_format.ParseDict(entry, intake_pb2.SubmitRequestRequest()))
        assert got == category, f"[{i}] {entry['idempotency_key']}: meant {category}, review gives {got}"
        used.update(criteria_ids)
    # Every criteria set of the library is exercised, and so is "no criteria set covers this".
    assert {c.id for c in _library().current()} | {None} == set(used)


# -- members -----------------------------------------------------------------------------------------

def test_members_file_format(members: list[dict[str, Any]]) -> None:
    assert 180 <= len(members) <= 220
    ids = [m["member_id"] for m in members]
    assert len(set(ids)) == len(ids)
    for m in members:
        assert re.fullmatch(r"[A-Z0-9-]{6,20}", m["member_id"])
        assert isinstance(m["birth_date"], str)
        assert dt.date.fromisoformat(m["birth_date"])
        assert 1 <= len(m["coverages"]) <= 2
        for c in m["coverages"]:
            assert set(c) == {"line_of_business", "plan_id", "state", "effective", "termination"}
            assert c["line_of_business"] in ("medicare_advantage", "medicaid", "commercial", "workers_comp")
            assert re.fullmatch(r"[A-Z]{2}", c["state"])
            assert isinstance(c["plan_id"], str)
            assert c["plan_id"]
            assert isinstance(c["effective"], str)
            assert dt.date.fromisoformat(c["effective"])
            assert c["termination"] is None or dt.date.fromisoformat(c["termination"]) < dt.date(2026, 11, 1)


def test_members_spread(members: list[dict[str, Any]]) -> None:
    coverages = [c for m in members for c in m["coverages"]]
    lobs = Counter(c["line_of_business"] for c in coverages)
    assert all(lobs[lob] >= 30 for lob in ("medicare_advantage", "medicaid", "commercial", "workers_comp"))
    states = Counter(c["state"] for c in coverages)
    assert 8 <= len(states) <= 12
    assert [s for s, _ in states.most_common(2)] == ["CA", "TX"]
    wc = Counter(c["state"] for c in coverages if c["line_of_business"] == "workers_comp")
    assert (wc["CA"] + wc["TX"]) / sum(wc.values()) >= 0.75
    assert sum(1 for m in members if len(m["coverages"]) == 2) >= 3
    assert sum(1 for m in members if all(c["termination"] for c in m["coverages"])) >= 3


def test_the_committed_files_are_what_the_script_generates(tmp_path: Path) -> None:
    make_sample.write(tmp_path)
    for name in ("members.yaml", "workload.json", "workload.expected.json"):
        assert (tmp_path / name).read_text() == (SAMPLE / name).read_text(), \
            f"{name} is stale: run .venv/bin/python deploy/sample/make_sample.py"
