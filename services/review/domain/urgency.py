"""When a request is handled as expedited: what the provider asked, what the criteria say about each
line, what a person decides, and what each regime lets the plan do about its clock. Pure.

A line is urgent under its criteria when the set's ``urgent_when`` rule holds, or when it still waits
for a fact while one of the set's red flags is met (a derived one included:
:class:`~services.review.domain.criteria.UrgencySignal`). Such a line is routed as expedited:

* where the plan may expedite a request on its own judgment, the request's clock starts as expedited
  (72 hours) and every task of the request follows it (they share the clock), each saying why;
* elsewhere the regime's clock stays as it is, and the request's tasks go to the head of the queue
  (an expedited task sorts before every standard one), each saying why and that the clock stays.

Either way every task of the request is expedited in the queue: they are one patient's, and the
line that is not urgent under its own criteria (the decompression beside a cauda equina MRI) is
often the one that cannot wait.

Which regimes let the plan decide (:data:`POLICIES`):

``cms-0057-f``
    Medicare Advantage: 42 CFR 422.570(c)(2)(i), the MA organization provides an expedited
    determination when it determines that applying the standard timeframe could seriously
    jeopardize the enrollee's life or health or ability to regain maximum function; it must when a
    physician indicates so, (c)(2)(ii). Medicaid managed care: 42 CFR 438.210(d)(2)(i), "a provider
    indicates, or the MCO, PIHP, or PAHP determines".
``erisa-2560.503-1``
    29 CFR 2560.503-1(m)(1): a claim involving urgent care is one where the standard periods could
    seriously jeopardize life, health or the ability to regain maximum function; (m)(1)(ii) it is
    determined by an individual acting on behalf of the plan with the judgment of a prudent layperson
    (and a physician's determination that it is urgent is binding).
``ca-lc-4610``
    California workers' comp: 8 CCR 9792.9.1(c)(4), the requesting physician indicates the need for an
    expedited review with the request; the claims administrator's clock is not shortened on its own.
``tx-28-tac-134.600``, ``workers-comp-default``
    No rule here lets the carrier shorten the period on its own judgment.

A person may change a task's urgency, with a reason (:meth:`~services.review.domain.task.Task.set_urgency`);
the request's clock follows where the plan may decide and the clock has not moved since it started
(:func:`person_clock_change`). No one lowers an expedited review the provider asked for: the
regulations above make a physician's indication binding.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from services.review.domain.deadlines import ClockState
from services.review.domain.workflow import Conflict

EXPEDITED = "expedited"
STANDARD = "standard"
URGENCIES = (STANDARD, EXPEDITED)


@dataclass(frozen=True)
class ExpeditePolicy:
    """Whether the plan may expedite a request on its own judgment under a regime, and the rule."""

    plan_may_expedite: bool
    citation: str


POLICIES: Mapping[str, ExpeditePolicy] = {
    "cms-0057-f": ExpeditePolicy(True, "42 CFR 422.570(c)(2)(i); 438.210(d)(2)(i): the plan's own determination"),
    "erisa-2560.503-1": ExpeditePolicy(True, "29 CFR 2560.503-1(m)(1)(ii): the plan's prudent-layperson judgment"),
    "ca-lc-4610": ExpeditePolicy(False, "8 CCR 9792.9.1(c)(4): the requesting physician indicates an expedited "
                                        "review"),
    "tx-28-tac-134.600": ExpeditePolicy(False, "28 TAC 134.600 sets the period; no shorter one on the carrier's "
                                               "own judgment"),
    "workers-comp-default": ExpeditePolicy(False, "no state rule is configured; the conservative default clock "
                                                  "stays"),
}
PROVIDER_INDICATED = ("the provider asked for an expedited review, which binds the plan (42 CFR 422.570(c)(2)(ii); "
                      "438.210(d)(2)(i); 29 CFR 2560.503-1(m)(1)(ii); 8 CCR 9792.9.1(c)(4))")


def expedite_policy(regime: str) -> ExpeditePolicy:
    """The regime's policy; a regime not listed lets the plan expedite nothing on its own."""
    return POLICIES.get(regime, ExpeditePolicy(False, f"{regime}: no rule lets the plan expedite on its own"))


@dataclass(frozen=True)
class UrgentLine:
    """A line its criteria call urgent, and why (UrgencySignal.reason())."""

    line_number: int
    reason: str


@dataclass(frozen=True)
class Routing:
    """How a new request is routed: the urgency its clock runs on (and why, when the plan expedited
    it), and each line's task urgency and reason (lines not named keep ``default``)."""

    clock_urgency: str
    clock_reason: str = ""
    lines: Mapping[int, tuple[str, str]] = field(default_factory=dict)
    default: tuple[str, str] = (STANDARD, "")

    def for_line(self, line_number: int) -> tuple[str, str]:
        """(urgency, why) of the line's task; ``why`` is empty when nothing changed it."""
        return self.lines.get(line_number, self.default)


def route(requested: str, review_type: str, regime: str, urgent: Sequence[UrgentLine]) -> Routing:
    """Route a new request (see the module docstring). ``requested``: what the provider asked;
    ``regime``: the regime of the clock started for it."""
    if requested == EXPEDITED or not urgent or review_type == "retrospective":
        # Asked for already, nothing urgent, or a service already given (no expedited clock).
        return Routing(requested, default=(requested, ""))
    policy = expedite_policy(regime)
    why = "; ".join(f"line {u.line_number}: {u.reason}" for u in urgent)
    if policy.plan_may_expedite:
        lines = {u.line_number: (EXPEDITED, u.reason) for u in urgent}
        return Routing(EXPEDITED, f"expedited on the plan's own determination ({policy.citation}): {why}", lines,
                       default=(EXPEDITED, f"its request is expedited: {why}"))
    stays = f"at the head of the queue, the {regime} clock stays ({policy.citation})"
    lines = {u.line_number: (EXPEDITED, f"{u.reason}; {stays}") for u in urgent}
    return Routing(STANDARD, "", lines, default=(EXPEDITED, f"its request has an urgent line: {why}; {stays}"))


def person_clock_change(regime: str, review_type: str, clock: ClockState | None, asked: str,
                        wanted: str) -> tuple[bool, str]:
    """What a person's change of a task's urgency to ``wanted`` does to the request's clock: (restart
    the clock with ``wanted`` from the receipt, what the task's history says about the clock).
    Raises Conflict when it would lower an expedited review the provider ``asked`` for."""
    if wanted == STANDARD and asked == EXPEDITED:
        raise Conflict(f"{PROVIDER_INDICATED}; it stays expedited")
    policy = expedite_policy(regime)
    if clock is None:
        return False, "the case has no regulatory clock; the queue order changes"
    if review_type == "retrospective":
        return False, "a retrospective review has no expedited clock; the queue order changes"
    if not policy.plan_may_expedite:
        return False, f"the clock stays ({policy.citation}); the queue order changes"
    if clock.expedited == (wanted == EXPEDITED):
        return False, "the clock already runs so"
    if any(event.kind != "started" for event in clock.history):
        return False, "the clock stays: it was pended, resumed or extended since it started; the queue order changes"
    return True, f"the request's clock restarts as {wanted} from its receipt ({policy.citation})"
