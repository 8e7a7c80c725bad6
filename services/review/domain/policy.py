"""What a line may skip before criteria are applied. Pure Python, no I/O.

Two payer policies, each answered from data rather than clinical facts:

* :class:`NoPriorAuthList`: per line of business, the services that need no prior authorization
  at all (X12 278 action NA, "no action required"). Plans publish such lists; a code on it is
  answered at once and nothing is authorized.
* :class:`GoldCardPolicy`: a provider whose requests for a service category were approved at least
  ``approval_rate`` of the time over the last ``window_days`` (with at least ``min_requests`` of
  them) is exempt from prior authorization for that category (Texas HB 3459: 90 % over a six-month
  evaluation period). The counts come from the review service's own records; this module only
  judges them.

Neither produces anything adverse: a listed code is answered "no authorization needed", an
exempt provider's line is approved, and everything else goes on to criteria.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from services.review.domain.criteria import LINES_OF_BUSINESS, is_service_code


class InvalidPolicy(ValueError):
    """A policy that contradicts itself. ``field`` is a dotted path; the loader adds the file name."""

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field}: {problem}")
        self.field = field
        self.problem = problem


# -- no prior authorization required ---------------------------------------------------------------

@dataclass(frozen=True)
class NoPriorAuthEntry:
    """One code that needs no prior authorization in one line of business, and why."""

    code: str
    line_of_business: str
    reason: str
    source: str

    def summary(self, list_name: str) -> str:
        """The sentence a determination carries."""
        lob = self.line_of_business.replace("_", " ")
        return (f"No prior authorization is required for {self.code} under {lob}: {self.reason} "
                f"(source: {self.source}; no-prior-authorization list {list_name}).")


@dataclass(frozen=True)
class NoPriorAuthList:
    """The codes needing no prior authorization, per line of business. ``name`` identifies the list
    in determinations (its file name)."""

    entries: tuple[NoPriorAuthEntry, ...]
    name: str = "no-prior-auth"
    _by_key: Mapping[tuple[str, str], NoPriorAuthEntry] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        by_key: dict[tuple[str, str], NoPriorAuthEntry] = {}
        for i, entry in enumerate(self.entries):
            where = f"{entry.line_of_business}[{i}]"
            if entry.line_of_business not in LINES_OF_BUSINESS:
                raise InvalidPolicy(entry.line_of_business or "line_of_business",
                                    f"{entry.line_of_business!r} is not one of {sorted(LINES_OF_BUSINESS)}")
            if not is_service_code(entry.code):
                raise InvalidPolicy(f"{where}.code", f"{entry.code!r} is neither a CPT nor a HCPCS code")
            if not entry.reason.strip():
                raise InvalidPolicy(f"{where}.reason", "must not be empty")
            if not entry.source.strip():
                raise InvalidPolicy(f"{where}.source", "must not be empty")
            key = (entry.line_of_business, entry.code)
            if key in by_key:
                raise InvalidPolicy(f"{where}.code", f"{entry.code!r} is listed twice for {entry.line_of_business}")
            by_key[key] = entry
        object.__setattr__(self, "_by_key", by_key)

    @classmethod
    def empty(cls) -> NoPriorAuthList:
        return cls(())

    def lookup(self, line_of_business: str, procedure_code: str) -> NoPriorAuthEntry | None:
        """The entry exempting ``procedure_code`` in ``line_of_business``, or None (PA may apply)."""
        return self._by_key.get((line_of_business, procedure_code.strip().upper()))

    def codes(self) -> frozenset[str]:
        """Every listed code, in any line of business."""
        return frozenset(code for _, code in self._by_key)


# -- gold card -------------------------------------------------------------------------------------

@dataclass(frozen=True)
class LineOutcome:
    """Who decided a line and whether it was approved: one entry of a provider's record. Lines
    answered from the no-prior-authorization list or under a gold card have none, so an exemption
    cannot feed itself."""

    request_id: str
    line_number: int
    requesting_npi: str
    category: str
    decided_at: dt.datetime
    approved: bool
    decided_by: str  # "system:rules-engine" or a reviewer id


@dataclass(frozen=True)
class ProviderRecord:
    """A provider's criteria- or person-decided lines in one category since ``since``."""

    npi: str
    category: str
    approved: int
    total: int
    since: dt.date


@dataclass(frozen=True)
class GoldCard:
    """An exemption earned by ``record``."""

    record: ProviderRecord

    @property
    def reason(self) -> str:
        r = self.record
        return (f"provider exempt (gold card): {r.approved} of {r.total} {r.category} requests approved "
                f"since {r.since.isoformat()}")

    @property
    def flag(self) -> str:
        return f"requesting provider {self.record.npi} is gold-carded for {self.record.category}"


@dataclass(frozen=True)
class GoldCardPolicy:
    """When a provider's record exempts them from prior authorization for a category."""

    approval_rate: float = 0.90
    min_requests: int = 10
    window_days: int = 183

    def __post_init__(self) -> None:
        if not 0.0 < self.approval_rate <= 1.0:
            raise InvalidPolicy("approval_rate", f"{self.approval_rate!r} is not a share in (0, 1]")
        if self.min_requests < 1:
            raise InvalidPolicy("min_requests", f"{self.min_requests!r}: at least one request must count")
        if self.window_days < 1:
            raise InvalidPolicy("window_days", f"{self.window_days!r}: the window must be at least one day")

    def window_start(self, now: dt.datetime) -> dt.datetime:
        """The earliest decision time that counts at ``now``."""
        return now - dt.timedelta(days=self.window_days)

    def judge(self, record: ProviderRecord) -> GoldCard | None:
        """The exemption ``record`` earns, or None."""
        if record.total < self.min_requests or record.approved > record.total:
            return None
        # The tolerance keeps 9 of 10 at 0.90 qualifying despite float rounding.
        if record.approved < self.approval_rate * record.total - 1e-9:
            return None
        return GoldCard(record)

    def exemptions(self, records: Iterable[ProviderRecord]) -> dict[tuple[str, str], GoldCard]:
        """(npi, category) → the exemption, for the records that earn one."""
        cards = {}
        for record in records:
            card = self.judge(record)
            if card is not None:
                cards[(record.npi, record.category)] = card
        return cards


@dataclass(frozen=True)
class Policies:
    """The policies applied before criteria."""

    no_prior_auth: NoPriorAuthList = field(default_factory=NoPriorAuthList.empty)
    gold_card: GoldCardPolicy = field(default_factory=GoldCardPolicy)
