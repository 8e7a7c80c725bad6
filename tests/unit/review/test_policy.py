"""Before criteria: the no-prior-authorization list, the gold-card exemption and their order, in the
domain, in the loader, and through the handler on a SQLite database (records written with the case,
one aggregate read per batch, an exemption that cannot feed itself)."""

from __future__ import annotations

import datetime as dt
import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from sqlalchemy import Engine, select
from ur.common.v1 import types_pb2
from ur.intake.v1 import intake_pb2

from services.common.settings import ReviewSettings
from services.review import bootstrap
from services.review.adapters import tables
from services.review.adapters.criteria_evaluator import LibraryEvaluator
from services.review.adapters.policy_loader import DEFAULT_NO_PA_LIST, PolicyFileError, load_no_prior_auth
from services.review.domain.criteria import LineEvaluation, Outcome, PythonMatcher
from services.review.domain.decisions import DecidedBy, decide_line, decide_with_policy
from services.review.domain.policy import (
    GoldCard,
    GoldCardPolicy,
    InvalidPolicy,
    NoPriorAuthEntry,
    NoPriorAuthList,
    ProviderRecord,
)
from services.review.service_layer.handlers import ReviewHandlers
from tests.factories import OTHER_NPI, VALID_NPI, lumbar_mri, submitted_event
from tests.fakes.review import NoDuplicates
from tests.unit.review.builders import SHIPPED_DIR, shipped_library

NOW = dt.datetime(2026, 11, 24, 12, tzinfo=dt.UTC)  # the clock every handler here reads

REPO = Path(__file__).resolve().parents[3]

# Codes the tests and the sample workload use for "no criteria set covers this": never exempt them.
UNKNOWN_SERVICE_CODES = {"28296", "99999"}


# -- the shipped list ----------------------------------------------------------------------------------

def _criteria_codes() -> dict[str, str]:
    """Every service code any criteria file in the directory names, read at test time (the
    library grows while this list stays put), tolerant of files that do not load."""
    codes: dict[str, str] = {}
    for path in sorted(SHIPPED_DIR.glob("*.y*ml")):
        try:
            doc = yaml.safe_load(path.read_text(encoding="utf-8"))
        except yaml.YAMLError:
            continue
        for code in (doc or {}).get("service_codes", []) or []:
            codes[str(code).strip().upper()] = path.name
    return codes


def test_shipped_list_loads_with_reasons_and_sources() -> None:
    listed = load_no_prior_auth(DEFAULT_NO_PA_LIST)
    assert listed.name == "no-prior-auth.yaml"
    assert {"99213", "72100", "80053", "85025"} <= listed.codes()
    entry = listed.lookup("medicare_advantage", "99213")
    assert entry is not None
    assert entry.reason
    assert entry.source
    assert listed.lookup("workers_comp", "80053") is None  # per line of business


def test_no_criteria_set_covers_a_code_on_the_list() -> None:
    covered = _criteria_codes()
    clash = {code: covered[code] for code in load_no_prior_auth(DEFAULT_NO_PA_LIST).codes() if code in covered}
    assert not clash, f"codes both exempt from prior authorization and covered by criteria: {clash}"


def test_no_code_the_workload_or_tests_treat_as_unknown_is_on_the_list() -> None:
    workload = json.loads((REPO / "deploy" / "sample" / "workload.json").read_text())
    sample_codes = {line["procedure_code"] for entry in workload for line in entry.get("service_lines", [])}
    listed = load_no_prior_auth(DEFAULT_NO_PA_LIST).codes()
    assert not listed & (sample_codes | UNKNOWN_SERVICE_CODES)


def test_lookup_normalizes_the_code() -> None:
    listed = NoPriorAuthList((NoPriorAuthEntry("G0123", "commercial", "why", "where"),))
    assert listed.lookup("commercial", " g0123 ") is not None
    assert listed.lookup("medicaid", "G0123") is None
    assert NoPriorAuthList.empty().lookup("commercial", "99213") is None


# -- the loader ------------------------------------------------------------------------------------------

GOOD = """\
version: "1"
entries:
  - codes: ["99213"]
    lines_of_business: [commercial]
    reason: office visit
    source: a published list
"""


@pytest.mark.parametrize(("text", "field", "problem"), [
    (GOOD.replace("reason:", "why:"), "entries[0].why", "unknown key"),
    (GOOD.replace("    source: a published list\n", ""), "entries[0].source", "is required"),
    (GOOD.replace('["99213"]', '["9921"]'), "entries[0].codes[0]", "neither a CPT nor a HCPCS"),
    (GOOD.replace('["99213"]', "[99213]"), "entries[0].codes[0]", "expected text, got the number 99213"),
    (GOOD.replace("[commercial]", "[commercial, medicare]"), "entries[0].lines_of_business[1]", "'medicare'"),
    (GOOD.replace('["99213"]', '["99213", "99213"]'), "entries[0].codes[1]", "already listed for commercial"),
    (GOOD + "  - codes: []\n    lines_of_business: [commercial]\n    reason: r\n    source: s\n",
     "entries[1].codes", "non-empty list"),
    (GOOD.replace('version: "1"', "entries: []\nversion: x"), "", "duplicate key"),
    ("version: '1'\nentries: {}\n", "entries", "expected a list"),
])
def test_loader_names_file_and_field(tmp_path: Path, text: str, field: str, problem: str) -> None:
    path = tmp_path / "no-pa.yaml"
    path.write_text(text)
    with pytest.raises(PolicyFileError) as caught:
        load_no_prior_auth(path)
    assert caught.value.field == field
    assert problem in str(caught.value)
    assert str(caught.value).startswith("no-pa.yaml: ")


def test_loader_reports_a_missing_file(tmp_path: Path) -> None:
    with pytest.raises(PolicyFileError, match="cannot read"):
        load_no_prior_auth(tmp_path / "absent.yaml")


# -- the gold card ---------------------------------------------------------------------------------------

SINCE = dt.date(2026, 5, 25)


def record(approved: int, total: int) -> ProviderRecord:
    return ProviderRecord(VALID_NPI, "advanced_imaging", approved, total, SINCE)


@pytest.mark.parametrize(("approved", "total", "exempt"), [
    (9, 10, True), (10, 10, True), (47, 50, True), (8, 10, False), (9, 9, False), (0, 0, False), (89, 99, False),
])
def test_gold_card_needs_the_rate_and_the_count(approved: int, total: int, exempt: bool) -> None:
    assert (GoldCardPolicy().judge(record(approved, total)) is not None) is exempt


def test_gold_card_reason_states_the_figures() -> None:
    card = GoldCardPolicy().judge(record(47, 50))
    assert card is not None
    assert card.reason == "provider exempt (gold card): 47 of 50 advanced_imaging requests approved since 2026-05-25"


def test_gold_card_window_and_exemptions_by_pair() -> None:
    policy = GoldCardPolicy(min_requests=2, window_days=183)
    now = dt.datetime(2026, 11, 24, 12, tzinfo=dt.UTC)
    assert policy.window_start(now) == now - dt.timedelta(days=183)
    other = ProviderRecord(OTHER_NPI, "sleep_medicine", 1, 2, SINCE)
    assert set(policy.exemptions([record(2, 2), other])) == {(VALID_NPI, "advanced_imaging")}


@pytest.mark.parametrize("kwargs", [{"approval_rate": 0.0}, {"approval_rate": 1.5}, {"min_requests": 0},
                                    {"window_days": 0}])
def test_gold_card_policy_refuses_nonsense(kwargs: dict[str, float]) -> None:
    with pytest.raises(InvalidPolicy):
        GoldCardPolicy(**kwargs)  # type: ignore[arg-type]


# -- the order -------------------------------------------------------------------------------------------

def evaluation(outcome: Outcome, missing: tuple[str, ...] = ()) -> LineEvaluation:
    return LineEvaluation(outcome=outcome, criteria_id="imaging-mri-lumbar-spine", criteria_version="2026.1",
                          criteria_hash="abc", conditions=(), missing_facts=missing, summary=f"criteria: {outcome}",
                          category="advanced_imaging")


CARD = GoldCard(record(47, 50))
LISTED = NoPriorAuthEntry("99213", "commercial", "office visit", "a published list")


def test_no_prior_auth_comes_first_and_needs_no_person() -> None:
    d = decide_with_policy(None, "99213", "commercial", ["UR26-XXXX"], no_prior_auth=LISTED,
                           no_prior_auth_list="no-prior-auth.yaml", gold_card=CARD)
    assert (d.outcome, d.action, d.queued_for_review) == (Outcome.NO_ACTION_REQUIRED, "no_action_required", False)
    assert d.decided_by is DecidedBy.NO_PRIOR_AUTH_LIST
    assert not d.counts_for_gold_card
    assert all(part in d.reasons[0] for part in ("office visit", "no-prior-auth.yaml", "a published list"))


@pytest.mark.parametrize("outcome", [Outcome.REFER_TO_NURSE, Outcome.PEND_MISSING_INFORMATION])
def test_gold_card_approves_what_criteria_would_not(outcome: Outcome) -> None:
    d = decide_with_policy(evaluation(outcome, ("x",)), "72148", "commercial", [], gold_card=CARD)
    assert (d.outcome, d.action, d.queued_for_review) == (Outcome.MEETS_CRITERIA, "certified_in_total", False)
    assert d.reasons[0] == CARD.reason
    assert d.decided_by is DecidedBy.GOLD_CARD
    assert not d.counts_for_gold_card  # an exemption cannot feed itself


def test_criteria_approval_wins_over_the_gold_card_and_counts() -> None:
    d = decide_with_policy(evaluation(Outcome.MEETS_CRITERIA), "72148", "commercial", [], gold_card=CARD)
    assert d.decided_by is DecidedBy.CRITERIA
    assert d.counts_for_gold_card
    assert d.approved


def test_a_possible_duplicate_still_goes_to_a_nurse_under_a_gold_card() -> None:
    d = decide_with_policy(evaluation(Outcome.REFER_TO_NURSE), "72148", "commercial", ["UR26-AAAA-BBBB"],
                           gold_card=CARD)
    assert d.outcome is Outcome.REFER_TO_NURSE
    assert d.queued_for_review
    assert any("UR26-AAAA-BBBB" in f for f in d.flags)
    assert CARD.flag in d.flags


def test_without_policies_it_is_decide_line() -> None:
    for outcome in Outcome:
        e = evaluation(outcome, ("x",))
        assert decide_with_policy(e, "72148", "commercial", []) == decide_line(e, "72148", "commercial", [])
    assert decide_with_policy(None, "28296", "commercial", [], gold_card=CARD).outcome is Outcome.REFER_TO_NURSE


# -- through the handler, on SQLite ----------------------------------------------------------------------

@dataclass
class Review:
    engine: Engine
    handlers: ReviewHandlers

    def submit(self, request: intake_pb2.SubmitRequestRequest) -> types_pb2.Determination:
        request_id = str(uuid.uuid4())
        self.handlers.handle_batch([submitted_event(request, request_id, NOW)])
        return self.handlers.determination(request_id)

    def outcome_rows(self) -> list[tuple[str, str, bool]]:
        t = tables.provider_line_outcomes
        with self.engine.connect() as conn:
            return [(r.requesting_npi, r.category, r.approved)
                    for r in conn.execute(select(t).order_by(t.c.decided_at))]

    def tasks(self) -> int:
        with self.engine.connect() as conn:
            return len(conn.execute(select(tables.review_tasks.c.task_id)).all())


@pytest.fixture
def review(tmp_path: Path) -> Iterator[Review]:
    """Review as bootstrap wires it (shipped no-PA list, gold card after 3 requests), not started."""
    app = bootstrap.build(ReviewSettings(database_url=f"sqlite:///{tmp_path / 'review.db'}", topic_prefix="t",
                                         gold_card_min_requests=3),
                          clock=lambda: NOW, duplicates=NoDuplicates(),
                          evaluator=LibraryEvaluator(shipped_library(), PythonMatcher()))
    yield Review(app.runtime.engine, app.handlers)
    app.runtime.engine.dispose()


def office_visit() -> intake_pb2.SubmitRequestRequest:
    return lumbar_mri(procedure_code="99213")


def test_listed_code_is_answered_no_action_required_without_a_task(review: Review) -> None:
    det = review.submit(office_visit())
    line = det.lines[0]
    assert line.action_code == types_pb2.ACTION_CODE_NO_ACTION_REQUIRED
    assert line.outcome == types_pb2.LINE_OUTCOME_NO_ACTION_REQUIRED
    assert not line.queued_for_review
    assert "no-prior-auth.yaml" in line.explanation.summary
    assert line.explanation.flags
    assert not line.approved_units
    assert det.decided_by.id == "system:rules-engine"
    assert review.tasks() == 0
    assert review.outcome_rows() == []


def test_gold_card_is_earned_from_recorded_decisions_and_does_not_feed_itself(review: Review) -> None:
    referred = review.submit(lumbar_mri(meets=False))  # a criteria decision, not approved: 0 of 1
    assert referred.lines[0].queued_for_review
    for _ in range(3):
        assert review.submit(lumbar_mri(meets=True)).lines[0].action_code == types_pb2.ACTION_CODE_CERTIFIED_IN_TOTAL
    imaging = (VALID_NPI, "advanced_imaging")
    assert review.outcome_rows() == [(*imaging, False), (*imaging, True), (*imaging, True), (*imaging, True)]
    # 3 of 4 (75 %) is enough requests but too few approvals: still referred, and recorded.
    assert review.submit(lumbar_mri(meets=False)).lines[0].queued_for_review
    for _ in range(15):
        review.submit(lumbar_mri(meets=True))  # 18 of 20 = 90 %

    line = review.submit(lumbar_mri(meets=False)).lines[0]
    assert line.action_code == types_pb2.ACTION_CODE_CERTIFIED_IN_TOTAL
    assert not line.queued_for_review
    assert line.outcome == types_pb2.LINE_OUTCOME_MEETS_CRITERIA
    assert line.reasons[0].startswith("provider exempt (gold card): 18 of 20 advanced_imaging requests approved since ")
    assert line.explanation.summary.startswith("provider exempt (gold card)")
    assert line.explanation.flags
    assert line.explanation.criteria_id == "imaging-mri-lumbar-spine"
    assert line.explanation.criteria_version
    assert any(c.status == types_pb2.CONDITION_STATUS_UNMET for c in line.explanation.conditions)
    assert line.approved_units == 1
    assert review.tasks() == 2
    assert len(review.outcome_rows()) == 20  # the exempt approval is not recorded

    other = lumbar_mri(meets=False)
    other.requesting_provider.npi = OTHER_NPI
    assert review.submit(other).lines[0].queued_for_review  # the exemption is the provider's
    knee = lumbar_mri(meets=False, procedure_code="99213")
    assert review.submit(knee).lines[0].action_code == types_pb2.ACTION_CODE_NO_ACTION_REQUIRED
