"""The case: one submitted request, its determination and its regulatory clock. Pure: no I/O.

The request and the determination are kept as review received and decided them, serialized
(``ur.events.v1.RequestSubmitted`` and ``ur.common.v1.Determination``): the domain does not read
them; the service layer's determination building (service_layer/determinations.py) does.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from services.review.domain.deadlines import ClockState


@dataclass
class Case:
    request_id: str
    determination_id: str
    member_id: str
    line_of_business: str
    member_state: str
    urgency: str  # what the clock runs on: as asked, or expedited by the plan (domain/urgency.py)
    review_type: str
    requesting_npi: str
    received_at: dt.datetime
    due_at: dt.datetime  # the last due time the clock had (kept while it is tolled)
    regime: str
    request: bytes  # ur.events.v1.RequestSubmitted, as received (facts merged as information arrives)
    determination: bytes  # ur.common.v1.Determination, each line as last decided
    created_at: dt.datetime
    clock: ClockState | None = None  # None for cases stored before the clock was kept (migration 0003)

    def follow_clock(self, clock: ClockState) -> None:
        """Keep ``clock`` as the case's clock; a tolled clock keeps the last due time."""
        self.clock = clock
        if clock.due_at is not None:
            self.due_at = clock.due_at
