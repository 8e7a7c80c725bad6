"""From a criteria evaluation to what the line's determination says. Pure.

Software approves what clearly meets criteria and routes everything else to a
person. There is no path here to an adverse outcome: the worst software can
say is "pended, a nurse will look".
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from services.review.domain.criteria import ConditionStatus, LineEvaluation, Outcome

ACTION_CERTIFIED = "certified_in_total"
ACTION_PENDED = "pended"


@dataclass(frozen=True)
class LineDecision:
    outcome: Outcome
    action: str
    queued_for_review: bool
    reasons: tuple[str, ...]
    flags: tuple[str, ...]


def decide_line(evaluation: LineEvaluation | None, procedure_code: str, line_of_business: str,
                overlapping_authorizations: Sequence[str]) -> LineDecision:
    flags = tuple(f"possible duplicate of authorization {n} (same member, code and overlapping dates)"
                  for n in overlapping_authorizations)
    if evaluation is None:
        return LineDecision(Outcome.REFER_TO_NURSE, ACTION_PENDED, True,
                            (f"no criteria set covers {procedure_code} for {line_of_business.replace('_', ' ')}; "
                             "a nurse reviews it",), flags)
    outcome = evaluation.outcome
    if outcome in (Outcome.MEETS_CRITERIA, Outcome.MEETS_CRITERIA_URGENT):
        if flags:
            # Meeting criteria twice is not a reason to authorize twice: a person decides.
            return LineDecision(Outcome.REFER_TO_NURSE, ACTION_PENDED, True,
                                (evaluation.summary, "meets criteria but may duplicate an existing authorization"),
                                flags)
        reasons: tuple[str, ...] = (evaluation.summary,)
        if outcome is Outcome.MEETS_CRITERIA_URGENT:
            reasons += ("urgent: expedite scheduling",)
        return LineDecision(outcome, ACTION_CERTIFIED, False, reasons, flags)
    if outcome is Outcome.NO_ACTION_REQUIRED:
        return LineDecision(outcome, "no_action_required", False, (evaluation.summary,), flags)
    if outcome is Outcome.PEND_MISSING_INFORMATION:
        return LineDecision(outcome, ACTION_PENDED, True,
                            (evaluation.summary,
                             "information needed: " + ", ".join(evaluation.missing_facts)), flags)
    unmet = [c.description for c in evaluation.conditions if c.status is ConditionStatus.UNMET]
    reasons = (evaluation.summary, *(f"not met: {u}" for u in unmet))
    return LineDecision(Outcome.REFER_TO_NURSE, ACTION_PENDED, True, reasons, flags)
