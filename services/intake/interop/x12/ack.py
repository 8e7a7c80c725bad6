"""Acknowledgments: the 999 (005010X231A1) for functional groups and the TA1 for interchanges.

The 999 answers each received functional group: one AK2 per transaction set with its IK3 segment
errors, each followed by its IK4 element errors, and the IK5 verdict (A accepted, R rejected);
AK9 closes with the group's verdict (A, P partially accepted, R) and its counts. A TA1 answers an
interchange that could not be read, with its note code.
"""

from __future__ import annotations

from services.intake.interop.x12.edi import Delimiters, InterchangeRejection, clean, write
from services.intake.interop.x12.envelope import VERSION, Envelope, Interchange, TransactionSet, wrap

ACK_VERSION = "005010X231A1"


def _set_response(ts: TransactionSet, delimiters: Delimiters) -> list[tuple[str, ...]]:
    out: list[tuple[str, ...]] = [("AK2", ts.code or "278", ts.control_number, ts.header.get(3) or VERSION)]
    for error in ts.errors[:50]:
        out.append(("IK3", error.tag, str(error.position), error.loop, error.code))
        for element in error.elements[:20]:
            where = str(element.position) + (f"{delimiters.component}{element.component}"
                                             if element.component is not None else "")
            out.append(("IK4", where, element.element_ref, element.code, clean(element.value, delimiters, 99)))
    codes = list(ts.set_errors)
    if ts.errors and "5" not in codes:
        codes.append("5")  # one or more segments in error
    out.append(("IK5", "A" if ts.accepted else "R", *codes[:5]))
    return out


def ack_999(received: Interchange, envelope: Envelope) -> str:
    """A 999 interchange acknowledging every functional group received: one 999 transaction set
    (control numbers 0001, 0002, ...) per group."""
    d = Delimiters()
    transactions = []
    for n, group in enumerate(received.groups, start=1):
        control = f"{n:04d}"
        body: list[tuple[str, ...]] = [("ST", "999", control, ACK_VERSION),
                                       ("AK1", group.header.get(1), group.control_number, group.header.get(8))]
        accepted = 0
        for ts in group.transactions:
            body.extend(_set_response(ts, d))
            accepted += ts.accepted and not group.errors
        received_count = len(group.transactions)
        if group.errors or accepted == 0:
            verdict = "R"
        elif accepted < received_count:
            verdict = "P"
        else:
            verdict = "A"
        declared = group.trailer.get(1) if group.trailer is not None and group.trailer.get(1).isdigit() else str(
            received_count)
        body.append(("AK9", verdict, declared, str(received_count), str(accepted), *group.errors[:5]))
        body.append(("SE", str(len(body) + 1), control))
        transactions.append(body)
    return wrap(envelope, "FA", ACK_VERSION, transactions, d)


def ta1(rejection: InterchangeRejection, envelope: Envelope, received_control: str = "000000000",
        received_date: str = "", received_time: str = "") -> str:
    """A TA1 (interchange rejected) inside an interchange with no functional group."""
    d = Delimiters()
    at = envelope.at
    isa = ("ISA", "00", " " * 10, "00", " " * 10, envelope.sender.qualifier.ljust(2)[:2],
           envelope.sender.identifier.ljust(15)[:15], envelope.receiver.qualifier.ljust(2)[:2],
           envelope.receiver.identifier.ljust(15)[:15], at.strftime("%y%m%d"), at.strftime("%H%M"), d.repetition,
           "00501", f"{envelope.interchange_control:09d}", "0", envelope.usage, d.component)
    control = received_control if received_control.isdigit() and len(received_control) == 9 else "000000000"
    segments: list[tuple[str, ...]] = [
        isa,
        ("TA1", control, received_date or at.strftime("%y%m%d"), received_time or at.strftime("%H%M"), "R",
         rejection.code),
        ("IEA", "0", f"{envelope.interchange_control:09d}"),
    ]
    return write(segments, d)
