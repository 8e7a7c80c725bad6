"""Review's Prometheus metrics: decisions as they are committed, and the queue as the database holds it.

    ur_review_decisions_total{decider, outcome}     lines determined: decider ``software`` (the rules
                                                    engine, at receipt or after new information) or
                                                    the reviewer's role; outcome the ActionCode name
                                                    (certified_in_total, pended, not_certified...)
    ur_review_time_to_decision_seconds{regime, urgency}
                                                    receipt to final decision of a line (approved,
                                                    in part, modified or denied; pended lines are
                                                    not decided yet), by regulatory regime
    ur_review_queue_depth{status, urgency}          undecided tasks (open, claimed, pended_information)
    ur_review_tasks_at_risk{status, urgency}        undecided tasks whose at-risk time has come
    ur_review_tasks_overdue{urgency}                open or claimed tasks past their deadline

The auto-approval rate is a ratio of the decision counters over a window, which Prometheus computes
(deploy/prometheus/rules.yaml ``ur:review_auto_approval:ratio_rate1h``): final decisions made by
software as approvals over all final decisions.

The queue's figures come from :class:`QueueSampler`, one pass every UR_METRICS_INTERVAL_S: three
``count(*)`` queries that indexes answer on their own (the queue order's, and
``ix_review_tasks_status_at_risk``): a pass reads index entries, never the tasks themselves.
"""

from __future__ import annotations

from collections.abc import Sequence

from prometheus_client import Counter, Gauge, Histogram
from sqlalchemy import Engine, func, select

from services.common.clock import Clock
from services.common.metrics import Metrics
from services.review.adapters.tables import review_tasks
from services.review.domain.workflow import TaskStatus
from services.review.service_layer.ports import DecisionMetrics, LineDecided

#: Receipt to decision, in seconds: from the rules engine's sub-second answers to the 14 days (and
#: extensions) of a standard request's clock.
DECISION_BUCKETS = (1.0, 5.0, 30.0, 60.0, 300.0, 900.0, 3600.0, 4 * 3600.0, 12 * 3600.0, 24 * 3600.0,
                    48 * 3600.0, 72 * 3600.0, 7 * 86400.0, 14 * 86400.0, 30 * 86400.0)

#: Outcomes that end a line's review (a pended line waits for a person or for information; "no action
#: required" answers that no prior authorization is needed, which is not a decision on one).
FINAL = frozenset({"certified_in_total", "certified_partial", "not_certified", "modified"})

UNDECIDED = (TaskStatus.OPEN.value, TaskStatus.CLAIMED.value, TaskStatus.PENDED_INFORMATION.value)
RUNNING = (TaskStatus.OPEN.value, TaskStatus.CLAIMED.value)
URGENCY_OF_RANK = {0: "expedited", 1: "standard"}


class PrometheusDecisions(DecisionMetrics):
    """Decisions counted into ``metrics``' registry."""

    def __init__(self, metrics: Metrics) -> None:
        self.decisions = Counter("ur_review_decisions", "Service lines determined, by who decided and the outcome.",
                                 ["decider", "outcome"], registry=metrics.registry)
        self.time_to_decision = Histogram(
            "ur_review_time_to_decision_seconds",
            "Time from a request's receipt to the final decision of a line, by regulatory regime and urgency.",
            ["regime", "urgency"], buckets=DECISION_BUCKETS, registry=metrics.registry)

    def decided(self, lines: Sequence[LineDecided]) -> None:
        for line in lines:
            self.decisions.labels(line.decider, line.outcome).inc()
            if line.outcome in FINAL:
                self.time_to_decision.labels(line.regime or "unknown", line.urgency).observe(
                    max(0.0, (line.decided_at - line.received_at).total_seconds()))


class QueueSampler:
    """Reads the queue's depth, the tasks at risk and those overdue into gauges (a periodic pass)."""

    def __init__(self, engine: Engine, metrics: Metrics, *, clock: Clock) -> None:
        self._engine = engine
        self._now = clock
        self.depth = Gauge("ur_review_queue_depth", "Undecided review tasks, by status and urgency.",
                           ["status", "urgency"], registry=metrics.registry)
        self.at_risk = Gauge("ur_review_tasks_at_risk",
                             "Undecided review tasks whose at-risk time has come (less than the at-risk share of "
                             "their regulatory clock left, or none), by status and urgency.",
                             ["status", "urgency"], registry=metrics.registry)
        self.overdue = Gauge("ur_review_tasks_overdue",
                             "Open or claimed review tasks past their regulatory deadline, by urgency.", ["urgency"],
                             registry=metrics.registry)

    def sample(self) -> None:
        now = self._now()
        t = review_tasks
        with self._engine.connect() as conn:
            depth = conn.execute(select(t.c.status, t.c.urgency_rank, func.count())
                                 .where(t.c.status.in_(UNDECIDED)).group_by(t.c.status, t.c.urgency_rank)).all()
            at_risk = conn.execute(select(t.c.status, t.c.urgency_rank, func.count())
                                   .where(t.c.status.in_(UNDECIDED), t.c.at_risk_at <= now)
                                   .group_by(t.c.status, t.c.urgency_rank)).all()
            overdue = conn.execute(select(t.c.urgency_rank, func.count())
                                   .where(t.c.status.in_(RUNNING), t.c.due_at <= now)
                                   .group_by(t.c.urgency_rank)).all()
        _set(self.depth, {(status, URGENCY_OF_RANK.get(rank, "standard")): n for status, rank, n in depth},
             [(status, urgency) for status in UNDECIDED for urgency in URGENCY_OF_RANK.values()])
        _set(self.at_risk, {(status, URGENCY_OF_RANK.get(rank, "standard")): n for status, rank, n in at_risk},
             [(status, urgency) for status in UNDECIDED for urgency in URGENCY_OF_RANK.values()])
        _set(self.overdue, {(URGENCY_OF_RANK.get(rank, "standard"),): n for rank, n in overdue},
             [(urgency,) for urgency in URGENCY_OF_RANK.values()])


def _set(gauge: Gauge, counts: dict[tuple[str, ...], int], every: Sequence[tuple[str, ...]]) -> None:
    """Every label combination set, to 0 when the query found none (an empty queue reads 0, not gone)."""
    for labels in every:
        gauge.labels(*labels).set(counts.get(labels, 0))
