"""The X12 envelope: ISA/IEA interchange, GS/GE functional groups, ST/SE transaction sets.

``read_interchange`` checks what each level promises about the next: control numbers repeated in
the trailers, segment and set counts, the versions this door reads (ISA12 00501, GS08 and ST03
005010X217, GS01 HI, ST01 278). Interchange-level faults reject the whole body (a TA1 answers
them); group and transaction-set faults are recorded where they occur, with the codes a 999
reports (AK905 element 716, IK5 element 618), so the other transaction sets still go through.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field

from services.intake.interop.x12.edi import (
    TA1_NOTES,
    X12_DEFAULT,
    Delimiters,
    InterchangeRejection,
    Segment,
    tokenize,
    write,
)

VERSION = "005010X217"
ISA_VERSION = "00501"
_DIGITS9 = re.compile(r"[0-9]{9}")
_CONTROL = re.compile(r"[A-Za-z0-9]{4,9}")


@dataclass(frozen=True)
class ElementError:
    """A 999 IK4: the element (and component) position, its data element number, the error code
    (element 621: 1 missing, 4 too short, 5 too long, 6 invalid character, 7 invalid code value,
    8 invalid date, 9 invalid time, I12 pattern match failure ...) and a copy of the bad value."""

    position: int
    code: str
    value: str = ""
    component: int | None = None
    element_ref: str = ""


@dataclass(frozen=True)
class SegmentError:
    """A 999 IK3: segment ID, position in the transaction set (ST is 1), loop, and the error code
    (element 620: 1 unrecognized segment, 2 unexpected segment, 3 required segment missing, 5 segment
    exceeds maximum use, 7 not in proper sequence, 8 segment has data element errors)."""

    tag: str
    position: int
    loop: str
    code: str
    elements: tuple[ElementError, ...] = ()


@dataclass
class TransactionSet:
    header: Segment
    body: list[Segment]
    trailer: Segment | None
    errors: list[SegmentError] = field(default_factory=list)
    set_errors: list[str] = field(default_factory=list)  # IK5 codes (element 618)

    @property
    def code(self) -> str:
        return self.header.get(1)

    @property
    def control_number(self) -> str:
        return self.header.get(2)

    def position(self, segment: Segment) -> int:
        return segment.position - self.header.position + 1

    @property
    def accepted(self) -> bool:
        return not self.errors and not self.set_errors


@dataclass
class FunctionalGroup:
    header: Segment
    transactions: list[TransactionSet]
    trailer: Segment | None
    errors: list[str] = field(default_factory=list)  # AK9 codes (element 716)

    @property
    def control_number(self) -> str:
        return self.header.get(6)


@dataclass
class Interchange:
    delimiters: Delimiters
    header: Segment
    groups: list[FunctionalGroup]
    trailer: Segment

    @property
    def sender(self) -> tuple[str, str]:
        return self.header.get(5), self.header.get(6).rstrip()

    @property
    def receiver(self) -> tuple[str, str]:
        return self.header.get(7), self.header.get(8).rstrip()

    @property
    def control_number(self) -> str:
        return self.header.get(13)


def _isa_problem(isa: Segment) -> InterchangeRejection | None:
    checks = [
        ("005", len(isa.get(5)) == 2), ("007", len(isa.get(7)) == 2),
        ("014", _valid(isa.get(9), "%y%m%d")), ("015", _valid(isa.get(10), "%H%M")),
        ("017", isa.get(12) == ISA_VERSION), ("018", bool(_DIGITS9.fullmatch(isa.get(13)))),
        ("019", isa.get(14) in ("0", "1")), ("020", isa.get(15) in ("P", "T")),
    ]
    for code, ok in checks:
        if not ok:
            return InterchangeRejection(code, TA1_NOTES[code])
    return None


def _valid(value: str, pattern: str) -> bool:
    try:
        dt.datetime.strptime(value, pattern).replace(tzinfo=dt.UTC)  # only the format matters
    except ValueError:
        return False
    return value.isascii() and value.isdigit()


def read_interchange(text: str) -> Interchange | InterchangeRejection:
    """The interchange's structure, or why it cannot be read at all."""
    tokens = tokenize(text)
    if isinstance(tokens, InterchangeRejection):
        return tokens
    delimiters, segments = tokens
    isa = segments[0]
    rejected = _isa_problem(isa)
    if rejected is not None:
        return rejected
    if segments[-1].tag != "IEA":
        return InterchangeRejection("023", TA1_NOTES["023"] + ": no IEA trailer")
    iea = segments[-1]
    if iea.get(2) != isa.get(13):
        return InterchangeRejection("001", TA1_NOTES["001"])
    groups: list[FunctionalGroup] = []
    i = 1
    while i < len(segments) - 1:
        seg = segments[i]
        if seg.tag != "GS":
            return InterchangeRejection("024", TA1_NOTES["024"] + f": {seg.tag} outside a functional group")
        j = i + 1
        while j < len(segments) - 1 and segments[j].tag not in ("GE", "GS"):
            j += 1
        trailer = segments[j] if j < len(segments) - 1 and segments[j].tag == "GE" else None
        groups.append(_group(seg, segments[i + 1:j], trailer))
        i = j + 1 if trailer is not None else j
    if iea.get(1) != str(len(groups)):
        return InterchangeRejection("021", TA1_NOTES["021"])
    return Interchange(delimiters, isa, groups, iea)


def _group(gs: Segment, inner: list[Segment], ge: Segment | None) -> FunctionalGroup:
    group = FunctionalGroup(gs, [], ge)
    if gs.get(1) != "HI":
        group.errors.append("1")  # functional group not supported
    if gs.get(8) != VERSION:
        group.errors.append("2")  # functional group version not supported
    if not gs.get(6).isascii() or not gs.get(6).isdigit() or len(gs.get(6)) > 9:
        group.errors.append("6")  # group control number violates syntax
    i = 0
    seen: set[str] = set()
    while i < len(inner):
        st = inner[i]
        j = i + 1
        while j < len(inner) and inner[j].tag not in ("SE", "ST"):
            j += 1
        trailer = inner[j] if j < len(inner) and inner[j].tag == "SE" else None
        transaction = TransactionSet(st, inner[i + 1:j], trailer)
        if st.tag != "ST":
            transaction.set_errors.append("6")  # missing or invalid transaction set identifier
        _check_set(transaction, seen)
        group.transactions.append(transaction)
        i = j + 1 if trailer is not None else j
    if ge is None:
        group.errors.append("3")  # functional group trailer missing
    else:
        if ge.get(2) != gs.get(6):
            group.errors.append("4")  # group control numbers do not agree
        if ge.get(1) != str(len(group.transactions)):
            group.errors.append("5")  # number of included transaction sets does not match
    return group


def _check_set(ts: TransactionSet, seen: set[str]) -> None:
    if ts.code != "278":
        ts.set_errors.append("1")  # transaction set not supported
    if not _CONTROL.fullmatch(ts.control_number):
        ts.set_errors.append("7")  # missing or invalid transaction set control number
    elif ts.control_number in seen:
        ts.set_errors.append("23")  # control number not unique within the group
    seen.add(ts.control_number)
    if ts.header.get(3) != VERSION:
        ts.set_errors.append("I6")  # implementation convention not supported
    if ts.trailer is None:
        ts.set_errors.append("2")  # transaction set trailer missing
        return
    if ts.trailer.get(2) != ts.control_number:
        ts.set_errors.append("3")  # control numbers in header and trailer do not match
    if ts.trailer.get(1) != str(len(ts.body) + 2):
        ts.set_errors.append("4")  # number of included segments does not match actual count


@dataclass(frozen=True)
class Party:
    """An interchange/group address: ISA qualifier and id, GS application code."""

    qualifier: str
    identifier: str
    application: str


@dataclass(frozen=True)
class Envelope:
    """What a reply's envelope needs: who sends, who receives, control numbers, the moment, usage."""

    sender: Party
    receiver: Party
    interchange_control: int
    group_control: int
    at: dt.datetime
    usage: str = "P"  # ISA15: P production, T test


def reply_envelope(received: Interchange, interchange_control: int, group_control: int, at: dt.datetime) -> Envelope:
    """Swap the received interchange's sender and receiver for the answer."""
    group = received.groups[0].header if received.groups else None
    return Envelope(
        sender=Party(received.header.get(7), received.header.get(8).rstrip(), group.get(3) if group else ""),
        receiver=Party(received.header.get(5), received.header.get(6).rstrip(), group.get(2) if group else ""),
        interchange_control=interchange_control, group_control=group_control, at=at,
        usage=received.header.get(15) or "P")


def wrap(envelope: Envelope, functional_id: str, version: str, transactions: list[list[tuple[str, ...]]],
         delimiters: Delimiters = X12_DEFAULT) -> str:
    """ISA/GS ... GE/IEA around transaction sets (each a list of segments from ST to SE inclusive)."""
    if not 0 < envelope.interchange_control < 10**9 or not 0 < envelope.group_control < 10**9:
        raise ValueError("control numbers are 1 to 999999999")
    at = envelope.at
    isa = ("ISA", "00", " " * 10, "00", " " * 10, envelope.sender.qualifier.ljust(2)[:2],
           envelope.sender.identifier.ljust(15)[:15], envelope.receiver.qualifier.ljust(2)[:2],
           envelope.receiver.identifier.ljust(15)[:15], at.strftime("%y%m%d"), at.strftime("%H%M"),
           delimiters.repetition, ISA_VERSION, f"{envelope.interchange_control:09d}", "0", envelope.usage,
           delimiters.component)
    gs = ("GS", functional_id, envelope.sender.application or envelope.sender.identifier,
          envelope.receiver.application or envelope.receiver.identifier, at.strftime("%Y%m%d"), at.strftime("%H%M"),
          str(envelope.group_control), "X", version)
    body: list[tuple[str, ...]] = [isa, gs]
    for transaction in transactions:
        body.extend(transaction)
    body.append(("GE", str(len(transactions)), str(envelope.group_control)))
    body.append(("IEA", "1", f"{envelope.interchange_control:09d}"))
    return write(body, delimiters)
