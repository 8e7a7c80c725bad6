"""ASC X12 005010X217 278 translations: what arrives, what is acknowledged, what is answered.

``receive_278`` reads an interchange and returns the acknowledgment to send at once (a TA1 when
the interchange cannot be read, else a 999 for its functional groups) and, for every 278 request
the 999 accepts, either the ``SubmitRequestRequest`` for intake or the rejections to answer with
``response_278``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass

from ur.intake.v1 import intake_pb2

from services.intake.interop.answers import Rejection
from services.intake.interop.payers import PayerProfile
from services.intake.interop.x12.ack import ack_999, ta1
from services.intake.interop.x12.edi import InterchangeRejection
from services.intake.interop.x12.envelope import Envelope, Interchange, Party, read_interchange, reply_envelope
from services.intake.interop.x12.request278 import Request278, parse_278, request_278_to_command
from services.intake.interop.x12.response278 import response_278, response_278_set


@dataclass(frozen=True)
class Received278:
    request: Request278
    outcome: intake_pb2.SubmitRequestRequest | list[Rejection]


@dataclass(frozen=True)
class Receipt:
    acknowledgment: str  # a TA1 or a 999 interchange
    interchange: Interchange | None
    requests: tuple[Received278, ...]


def receive_278(text: str, submitter_id: str, payers: Mapping[str, PayerProfile], *, at: dt.datetime,
                interchange_control: int, group_control: int, us: Party | None = None) -> Receipt:
    """Read, check and translate an interchange of 278 requests (never raises for the text).

    ``at`` and the control numbers stamp the acknowledgment; ``us`` names the receiver when the
    interchange is too broken to say who it was addressed to (for the TA1)."""
    read = read_interchange(text)
    if isinstance(read, InterchangeRejection):
        me = us or Party("ZZ", "UR-PLATFORM", "UR-PLATFORM")
        envelope = Envelope(me, Party("ZZ", "UNKNOWN", "UNKNOWN"), interchange_control, group_control, at)
        return Receipt(ta1(read, envelope), None, ())
    requests = []
    for group in read.groups:
        for ts in group.transactions:
            if ts.set_errors or group.errors:
                continue
            request = parse_278(ts, read.delimiters)
            if ts.errors:
                continue
            requests.append(Received278(request, request_278_to_command(request, submitter_id, payers)))
    envelope = reply_envelope(read, interchange_control, group_control, at)
    return Receipt(ack_999(read, envelope), read, tuple(requests))


__all__ = ["Envelope", "Party", "PayerProfile", "Receipt", "Received278", "receive_278", "reply_envelope",
           "response_278", "response_278_set"]
