"""What a door's trading-partner configuration knows about a payer that a request may not say."""

from __future__ import annotations

from dataclasses import dataclass

from ur.common.v1 import types_pb2


@dataclass(frozen=True)
class PayerProfile:
    """Keyed by a payer identifier: an insurer Organization identifier value (PAS) or the 278's
    2010A NM109 payer id. X12 278 carries no insurance type, so for X12 this is where the line of
    business comes from; PAS uses it only when ``Coverage.type`` does not say."""

    line_of_business: types_pb2.LineOfBusiness.ValueType
    plan_id: str = ""
    state: str = ""  # the state whose rules govern the plan, when the member's address is absent
