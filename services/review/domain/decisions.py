"""From a criteria evaluation to what the line's determination says. Pure.

Software approves what clearly meets criteria and routes everything else to a
person. There is no path here to an adverse outcome: the worst software can
say is "pended, a nurse will look".

:func:`decide_with_policy` puts the payer's policies before criteria, in this order:
a code on the no-prior-authorization list is answered "no action required"; a possible duplicate
of an existing authorization goes to a nurse whatever else holds; a line that meets criteria is
approved by them; a gold-carded provider's line that does not is approved under the exemption;
everything else is decided by criteria (:func:`decide_line`).
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Sequence
from dataclasses import dataclass

from services.review.domain.criteria import ConditionStatus, LineEvaluation, Outcome
from services.review.domain.policy import GoldCard, NoPriorAuthEntry

ACTION_CERTIFIED = "certified_in_total"
ACTION_PENDED = "pended"
ACTION_NO_ACTION_REQUIRED = "no_action_required"


class DecidedBy(enum.Enum):
    """What settled a line: the policy that answered it, or criteria. Only criteria-decided lines
    count towards a provider's gold-card record."""

    NO_PRIOR_AUTH_LIST = "no_prior_auth_list"
    GOLD_CARD = "gold_card"
    CRITERIA = "criteria"


@dataclass(frozen=True)
class LineDecision:
    outcome: Outcome
    action: str
    queued_for_review: bool
    reasons: tuple[str, ...]
    flags: tuple[str, ...]
    decided_by: DecidedBy = DecidedBy.CRITERIA

    @property
    def counts_for_gold_card(self) -> bool:
        """Whether the line joins the provider's record: decided by criteria (later perhaps by a
        person), and a prior authorization decision at all."""
        return self.decided_by is DecidedBy.CRITERIA and self.outcome is not Outcome.NO_ACTION_REQUIRED

    @property
    def approved(self) -> bool:
        return self.action == ACTION_CERTIFIED


def _duplicate_flags(overlapping_authorizations: Sequence[str]) -> tuple[str, ...]:
    return tuple(f"possible duplicate of authorization {n} (same member, code and overlapping dates)"
                 for n in overlapping_authorizations)


def decide_with_policy(evaluation: LineEvaluation | None, procedure_code: str, line_of_business: str,
                       overlapping_authorizations: Sequence[str], *, no_prior_auth: NoPriorAuthEntry | None = None,
                       no_prior_auth_list: str = "no-prior-auth", gold_card: GoldCard | None = None) -> LineDecision:
    """The line's decision with the payer's policies applied before criteria (see the module
    docstring for the order). ``gold_card`` is the requesting provider's exemption for the
    category of the criteria set that covers the line, if any."""
    if no_prior_auth is not None:
        # Nothing is authorized, so there is nothing to duplicate.
        return LineDecision(Outcome.NO_ACTION_REQUIRED, ACTION_NO_ACTION_REQUIRED, False,
                            (no_prior_auth.summary(no_prior_auth_list),),
                            (f"on the no-prior-authorization list ({no_prior_auth_list})",),
                            DecidedBy.NO_PRIOR_AUTH_LIST)
    meets = evaluation is not None and evaluation.outcome in (Outcome.MEETS_CRITERIA, Outcome.MEETS_CRITERIA_URGENT)
    if gold_card is None or meets or evaluation is None:
        return decide_line(evaluation, procedure_code, line_of_business, overlapping_authorizations)
    if overlapping_authorizations:
        # An exemption waives criteria, not the check against authorizing twice: a person decides,
        # on the criteria's findings, so the line counts towards the record like any other.
        decided = decide_line(evaluation, procedure_code, line_of_business, overlapping_authorizations)
        return dataclasses.replace(decided, flags=(*decided.flags, gold_card.flag))
    waived = (f"prior authorization waived for this provider: the {evaluation.criteria_id} criteria "
              f"did not decide this line ({evaluation.outcome.value})")
    return LineDecision(Outcome.MEETS_CRITERIA, ACTION_CERTIFIED, False, (gold_card.reason, waived),
                        (gold_card.flag,), DecidedBy.GOLD_CARD)


def decide_line(evaluation: LineEvaluation | None, procedure_code: str, line_of_business: str,
                overlapping_authorizations: Sequence[str]) -> LineDecision:
    flags = _duplicate_flags(overlapping_authorizations)
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
