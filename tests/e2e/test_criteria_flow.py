"""Acceptance: requests for services across the criteria library flow through the platform (the
services as separate processes on PostgreSQL and Kafka) with the line outcomes the criteria's own
worked examples promise; codes on the no-prior-authorization list need no action; a gold-carded
provider's line is approved where another provider's is referred; a possible duplicate is flagged;
missing facts are pended and named; an unknown service is referred. Then a new criteria version
is written into the running review service's criteria directory, and determinations record which
version decided them, before and after."""

from __future__ import annotations

import datetime as dt
import itertools
import json
import shutil
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from ur.common.v1 import types_pb2
from ur.intake.v1 import intake_pb2
from ur.review.v1 import review_pb2

from services.cli.platform import Platform
from services.common.proto_enums import to_number
from services.review.adapters.criteria_loader import load_criteria, load_library
from services.review.bootstrap import DEFAULT_CRITERIA_DIR
from services.review.domain.criteria import CriteriaSet, Example, FactValue, Outcome, normalize_diagnosis
from tests.e2e.conftest import Clients, start_platform, usable
from tests.polling import wait_until
from tests.topics import new_topic_prefix

pytestmark = pytest.mark.e2e

GOLD_CARD_MIN = 5
MEMBERS = {"medicare_advantage": ("T-MA-0001", "CA"), "medicaid": ("T-MCD-0002", "TX"),
           "commercial": ("T-COM-0003", "NY"), "workers_comp": ("T-WC-0004", "CA")}
LOB_NUMBER = {name: to_number(types_pb2.LineOfBusiness, name) for name in MEMBERS}
OUTCOME_NUMBER = {o: to_number(types_pb2.LineOutcome, o.value) for o in Outcome}
LUMBAR_FACTS: dict[str, FactValue] = {
    "suspected_cauda_equina": False, "suspected_cancer": False, "suspected_infection": False,
    "suspected_fracture": False, "progressive_neurologic_deficit": False}
_windows = itertools.count()
_npis = itertools.count(int(uuid.uuid4().int % 10**7) * 10)


def npi_check_digit(payload: str) -> int:
    """The Luhn check digit of a 9-digit NPI payload with the card issuer prefix 80840."""
    total = 0
    for i, ch in enumerate(reversed("80840" + payload)):
        d = int(ch) * (2 if i % 2 == 0 else 1)
        total += d - 9 if d > 9 else d
    return (10 - total % 10) % 10


def fresh_npi() -> str:
    """A valid NPI no other request here uses: each provider's record starts empty."""
    payload = f"1{next(_npis) % 10**8:08d}"
    return payload + str(npi_check_digit(payload))


def window() -> tuple[dt.date, dt.date]:
    """Dates no other request here overlaps (overlaps are flagged as possible duplicates)."""
    start = dt.date(2028, 1, 3) + dt.timedelta(days=20 * next(_windows))
    return start, start + dt.timedelta(days=14)


def pb_date(d: dt.date) -> types_pb2.Date:
    return types_pb2.Date(year=d.year, month=d.month, day=d.day)


def pb_fact(name: str, value: FactValue) -> types_pb2.ClinicalFact:
    if isinstance(value, bool):
        return types_pb2.ClinicalFact(name=name, bool_value=value)
    if isinstance(value, int | float):
        return types_pb2.ClinicalFact(name=name, number_value=float(value))
    if isinstance(value, dt.date):
        return types_pb2.ClinicalFact(name=name, date_value=pb_date(value))
    return types_pb2.ClinicalFact(name=name, text_value=value)


def icd(code: str) -> str:
    """``M5416`` → ``M54.16``: the form intake validates."""
    code = normalize_diagnosis(code)
    return code if len(code) <= 3 else f"{code[:3]}.{code[3:]}"


def request(code: str, diagnoses: tuple[str, ...], lob: str, facts: dict[str, FactValue], *, npi: str | None = None,
            units: int = 1, dates: tuple[dt.date, dt.date] | None = None) -> intake_pb2.SubmitRequestRequest:
    member_id, state = MEMBERS[lob]
    start, end = dates or window()
    return intake_pb2.SubmitRequestRequest(
        idempotency_key=f"criteria-flow-{uuid.uuid4()}", member_id=member_id,
        coverage=types_pb2.Coverage(line_of_business=LOB_NUMBER[lob], member_state=state,
                                    plan_id="PLAN-1"),
        requesting_provider=types_pb2.Provider(npi=npi or fresh_npi(), name="Requesting Clinic"),
        servicing_provider=types_pb2.Provider(npi=fresh_npi(), name="Servicing Center"),
        diagnoses=[types_pb2.Diagnosis(code=icd(d), primary=i == 0) for i, d in enumerate(diagnoses)],
        service_lines=[types_pb2.ServiceLine(line_number=1, procedure_code=code, units=units,
                                             start_date=pb_date(start), end_date=pb_date(end),
                                             place_of_service=types_pb2.PLACE_OF_SERVICE_OUTPATIENT_HOSPITAL)],
        review_type=types_pb2.REVIEW_TYPE_PROSPECTIVE, urgency=types_pb2.URGENCY_STANDARD,
        clinical_facts=[pb_fact(n, v) for n, v in facts.items() if n != "requested_units"])


def lumbar(therapy_weeks: float, *, npi: str | None = None, lob: str = "commercial",
           dates: tuple[dt.date, dt.date] | None = None, facts: bool = True) -> intake_pb2.SubmitRequestRequest:
    stated = {**LUMBAR_FACTS, "symptom_duration_weeks": 8.0, "conservative_therapy_weeks": therapy_weeks}
    return request("72148", ("M54.16",), lob, stated if facts else {}, npi=npi, dates=dates)


@dataclass
class Flow:
    platform: Platform
    clients: Clients
    criteria_dir: Path

    def decide(self, req: intake_pb2.SubmitRequestRequest) -> intake_pb2.RequestView:
        view = self.clients.intake.SubmitRequest(req, timeout=30).request
        return self.clients.settle(view.request_id)


@pytest.fixture(scope="module")
def flow(tmp_path_factory: pytest.TempPathFactory, make_database: Callable[[str], str],
         kafka_bootstrap: str) -> Iterator[Flow]:
    criteria_dir = tmp_path_factory.mktemp("criteria")
    for path in DEFAULT_CRITERIA_DIR.iterdir():
        if path.suffix in (".yaml", ".yml"):
            shutil.copy(path, criteria_dir / path.name)
    platform = start_platform(tmp_path_factory.mktemp("platform"), make_database, kafka_bootstrap,
                              new_topic_prefix(),
                              extra_env={"UR_REVIEW_CRITERIA_DIR": str(criteria_dir),
                                         "UR_REVIEW_CRITERIA_RELOAD_S": "1",
                                         "UR_REVIEW_GOLD_CARD_MIN_REQUESTS": str(GOLD_CARD_MIN)})
    clients = Clients(platform)
    yield Flow(platform, clients, criteria_dir)
    clients.close()
    platform.stop()


# -- across the library ------------------------------------------------------------------------------

def example_request(criteria: CriteriaSet, example: Example) -> intake_pb2.SubmitRequestRequest | None:
    """The request an example describes (the set's defaults filled in as the loader does), or None
    when its default diagnosis is too short a prefix to be a code intake accepts."""
    diagnoses = example.diagnoses or (criteria.diagnosis_patterns[0].rstrip("*"),)
    if any(len(normalize_diagnosis(d)) < 3 for d in diagnoses):
        return None
    units = example.facts.get("requested_units", 1)
    whole = int(units) if isinstance(units, int | float) and not isinstance(units, bool) and units >= 1 else 1
    return request(example.procedure_code or min(criteria.service_codes), diagnoses,
                   example.line_of_business or min(criteria.lines_of_business), dict(example.facts), units=whole)


def test_requests_across_the_library_get_the_outcomes_their_examples_promise(flow: Flow) -> None:
    library = load_library(flow.criteria_dir)
    cases: list[tuple[str, Example, str]] = []
    for criteria in library.current():
        seen: set[Outcome] = set()
        for example in criteria.examples:
            if example.expect in seen:
                continue
            req = example_request(criteria, example)
            if req is None:
                continue
            seen.add(example.expect)
            view = flow.clients.intake.SubmitRequest(req, timeout=30).request
            cases.append((criteria.key, example, view.request_id))
    covered = {key for key, _, _ in cases}
    assert {"imaging-mri-lumbar-spine@2026.1", "imaging-mri-knee@2026.1", "sleep-study-psg@2026.1",
            "sleep-study-home-test@2026.1", "therapy-pt-ot-visits@2026.1"} <= covered
    assert len(covered) >= 5
    wrong = []
    for key, example, request_id in cases:
        line = flow.clients.settle(request_id).lines[0]
        det = line.determination
        got = (det.outcome, f"{det.explanation.criteria_id}@{det.explanation.criteria_version}")
        if got != (OUTCOME_NUMBER[example.expect], key):
            wrong.append(f"{key} {example.name!r}: expected {example.expect.value}, got "
                         f"{types_pb2.LineOutcome.Name(det.outcome)} from {got[1]}: {det.explanation.summary}")
            continue
        if (example.expect is Outcome.PEND_MISSING_INFORMATION and example.missing_facts is not None
                and tuple(det.explanation.missing_facts) != tuple(sorted(example.missing_facts))):
            wrong.append(f"{key} {example.name!r}: missing {list(det.explanation.missing_facts)}")
        certified = det.action_code == types_pb2.ACTION_CODE_CERTIFIED_IN_TOTAL
        if certified != usable(line.authorization):
            wrong.append(f"{key} {example.name!r}: certified={certified} but authorization "
                         f"{line.authorization.authorization_number!r} "
                         f"{types_pb2.AuthorizationStatus.Name(line.authorization.status)}")
    assert not wrong, "\n".join(wrong)


# -- before criteria ---------------------------------------------------------------------------------

def test_a_code_on_the_no_prior_authorization_list_needs_no_action(flow: Flow) -> None:
    view = flow.decide(request("99213", ("M54.16",), "medicare_advantage", {}))
    assert view.status == intake_pb2.REQUEST_STATUS_COMPLETE
    line = view.lines[0]
    det = line.determination
    assert det.action_code == types_pb2.ACTION_CODE_NO_ACTION_REQUIRED
    assert det.outcome == types_pb2.LINE_OUTCOME_NO_ACTION_REQUIRED
    assert not det.queued_for_review
    assert "No prior authorization is required for 99213" in det.explanation.summary
    assert "no-prior-auth.yaml" in det.explanation.summary
    assert not line.authorization.authorization_number
    assert view.decided_by.id == "system:rules-engine"
    queue = flow.clients.review.ListReviewQueue(review_pb2.ListReviewQueueRequest(page_size=500), timeout=10)
    assert view.request_id not in {t.request_id for t in queue.tasks}


def test_a_gold_carded_provider_is_approved_where_another_is_referred(flow: Flow) -> None:
    gold = fresh_npi()
    for _ in range(GOLD_CARD_MIN):
        view = flow.decide(lumbar(7, npi=gold))
        assert view.lines[0].determination.action_code == types_pb2.ACTION_CODE_CERTIFIED_IN_TOTAL
    exempt = flow.decide(lumbar(2, npi=gold))  # two weeks of therapy: criteria alone refer it
    det = exempt.lines[0].determination
    assert det.action_code == types_pb2.ACTION_CODE_CERTIFIED_IN_TOTAL
    assert not det.queued_for_review
    assert det.reasons[0].startswith(f"provider exempt (gold card): {GOLD_CARD_MIN} of {GOLD_CARD_MIN} "
                                     "advanced_imaging requests approved since ")
    assert any(gold in f and "gold-carded" in f for f in det.explanation.flags)
    assert usable(exempt.lines[0].authorization)
    assert exempt.decided_by.id == "system:rules-engine"

    other = flow.decide(lumbar(2))
    det = other.lines[0].determination
    assert other.status == intake_pb2.REQUEST_STATUS_PENDED
    assert det.outcome == types_pb2.LINE_OUTCOME_REFER_TO_NURSE
    assert det.queued_for_review
    assert not usable(other.lines[0].authorization)


def test_an_overlapping_authorization_is_flagged(flow: Flow) -> None:
    start = dt.date(2031, 5, 1)
    first = flow.decide(lumbar(7, lob="medicare_advantage", dates=(start, start + dt.timedelta(days=14))))
    number = first.lines[0].authorization.authorization_number
    assert number
    again = flow.decide(lumbar(7, lob="medicare_advantage",
                               dates=(start + dt.timedelta(days=7), start + dt.timedelta(days=21))))
    det = again.lines[0].determination
    assert again.status == intake_pb2.REQUEST_STATUS_PENDED
    assert det.queued_for_review
    assert any(number in flag for flag in det.explanation.flags)


def test_missing_facts_are_pended_and_named(flow: Flow) -> None:
    det = flow.decide(lumbar(7, facts=False)).lines[0].determination
    assert det.outcome == types_pb2.LINE_OUTCOME_PEND_MISSING_INFORMATION
    assert det.queued_for_review
    assert {"symptom_duration_weeks", "conservative_therapy_weeks"} <= set(det.explanation.missing_facts)


def test_an_unknown_service_is_referred(flow: Flow) -> None:
    det = flow.decide(request("28296", ("M20.11",), "commercial", {})).lines[0].determination
    assert det.outcome == types_pb2.LINE_OUTCOME_REFER_TO_NURSE
    assert det.queued_for_review
    assert "no criteria set covers 28296" in det.reasons[0]


# -- a new criteria version while the service runs ---------------------------------------------------

def test_a_new_criteria_version_is_loaded_while_running_and_recorded(flow: Flow) -> None:
    before = flow.decide(lumbar(5))  # five weeks of therapy: short of 2026.1's six
    old = before.lines[0].determination
    assert (old.explanation.criteria_version, old.outcome) == ("2026.1", types_pb2.LINE_OUTCOME_REFER_TO_NURSE)

    text = (flow.criteria_dir / "imaging-mri-lumbar-spine.yaml").read_text(encoding="utf-8")
    threshold = "when: {fact: conservative_therapy_weeks, op: ge, value: 6}"
    assert threshold in text
    assert 'version: "2026.1"' in text
    new_file = flow.criteria_dir / "imaging-mri-lumbar-spine-2026.2.yaml"
    staging = flow.criteria_dir / "imaging-mri-lumbar-spine-2026.2.tmp"
    staging.write_text(text.replace('version: "2026.1"', 'version: "2026.2"')
                       .replace(threshold, "when: {fact: conservative_therapy_weeks, op: ge, value: 4}"),
                       encoding="utf-8")
    staging.rename(new_file)  # whole, or not at all: the watcher never sees half a file
    expected_hash = load_criteria(new_file).content_hash

    def version(view: intake_pb2.RequestView) -> str:
        return str(view.lines[0].determination.explanation.criteria_version)

    def decide_again() -> intake_pb2.RequestView:
        view = flow.decide(lumbar(5))
        assert version(view) in ("2026.1", "2026.2"), version(view)  # the old library or the new one, nothing else
        return view

    after = wait_until(decide_again, 60, what="the review service to decide by criteria version 2026.2",
                       until=lambda view: version(view) == "2026.2", interval_s=0.5)
    det = after.lines[0].determination
    assert det.outcome == types_pb2.LINE_OUTCOME_MEETS_CRITERIA
    assert det.action_code == types_pb2.ACTION_CODE_CERTIFIED_IN_TOTAL
    assert det.explanation.criteria_id == "imaging-mri-lumbar-spine"
    assert det.explanation.criteria_hash == expected_hash != old.explanation.criteria_hash
    assert after.decided_by.id == "system:rules-engine"
    assert after.lines[0].authorization.authorization_number

    # The determination made before the reload still says which version decided it.
    recorded = flow.clients.review.GetDetermination(
        review_pb2.GetDeterminationRequest(request_id=before.request_id), timeout=10).determination
    assert recorded.lines[0].explanation.criteria_version == "2026.1"
    assert recorded.lines[0].explanation.criteria_hash == old.explanation.criteria_hash
    log = flow.platform.log_path("review").read_text(encoding="utf-8", errors="replace")
    # The arrow may be escaped when the service's stderr is not UTF-8.
    reloaded = [ln for ln in log.splitlines() if "criteria reloaded: imaging-mri-lumbar-spine 2026.1 " in ln]
    assert reloaded, log[-2000:]
    assert json.loads(reloaded[0])["message"].endswith(" 2026.2"), log[-2000:]  # a JSON line (services/common/logs.py)
