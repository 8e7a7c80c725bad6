"""The 278 request (005010X217): HL loops -> ``ur.intake.v1.SubmitRequestRequest`` or AAA rejections.

Two kinds of fault, two answers, as the TR3 divides them:

* syntax and implementation faults (a required segment or element missing, a code not in its list,
  a malformed date) are ``SegmentError``s for the 999 (``parse_278``);
* a well-formed request the platform cannot review is a list of ``Rejection``s, each an AAA
  segment in the loop it concerns of the 278 response (``request_278_to_command``): 79 unknown
  payer (2010A), 43 requester without a valid NPI (2010B), 72 invalid subscriber id, 58 birth date
  after the request, 15 no state for the member (2010C), 64 a dependent without an own member id
  (2010D), 33 a certification type this door does not take, AF diagnoses, AG no procedure codes
  (2000E), and per service AG procedure code, 57 dates, 33 place of service or quantity (2000F).

Loops: 2000A UMO (HL03 20) with 2010A NM1*X3; 2000B requester (21) with 2010B; 2000C subscriber
(22) with 2010C NM1*IL (REF, N3, N4, DMG); 2000D dependent (23) with 2010D NM1*QC; 2000E patient
event (EV): TRN, UM, REF, DTP, HI, HSD, PWK, MSG and 2010E providers; 2000F service (SS): TRN, UM,
REF, DTP, SV1 or SV2, HSD, PWK, MSG and 2010F providers.

Mapping: member id 2010C NM109 (MI); line of business, plan and a fallback state from the payer
profile of 2010A NM109 (the 278 carries no insurance type); member state 2010C N402; requester
2010B NPI; servicing provider the 2010F/2010E provider (service provider SJ, facility FA, service
location 77, attending 71, operating 72), else the requester; diagnoses 2000E HI (ABK principal,
ABF/ABJ/APR others, ICD-10-CM); lines from 2000F: SV1/SV2 HC procedure code and modifiers, quantity
(SV104/SV205, else HSD02, else 1), DTP*472 service dates (else the event's DTP*AAH or admission
DTP*435), UM04 place of service (qualifier B) or bill type (A); UM02 I prospective (retrospective when
every line started before BHT04), R and 4 concurrent; UM06 U or 03 expedited; ``age_years`` from
the patient's DMG birth date on BHT04.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from ur.common.v1 import types_pb2
from ur.intake.v1 import intake_pb2

from services.intake.domain.codes import is_icd10cm, is_npi, is_procedure_code, is_state
from services.intake.domain.model import MAX_LINES
from services.intake.interop import codes
from services.intake.interop.answers import Rejection
from services.intake.interop.payers import PayerProfile
from services.intake.interop.x12.edi import Delimiters, Segment
from services.intake.interop.x12.envelope import ElementError, SegmentError, TransactionSet

LEVEL_LOOPS = {"20": "2000A", "21": "2000B", "22": "2000C", "23": "2000D", "EV": "2000E", "SS": "2000F"}
ENTITY_LOOPS = {"20": "2010A", "21": "2010B", "22": "2010C", "23": "2010D", "EV": "2010E", "SS": "2010F"}
PARENT_LEVELS = {"20": ("",), "21": ("20",), "22": ("21",), "23": ("22",), "EV": ("22", "23"), "SS": ("EV",)}
PRINCIPAL = ("ABK",)
OTHER_ICD10 = ("ABF", "ABJ", "APR")
ICD9 = ("BK", "BF", "BJ", "PR")
SERVICING_ROLES = ("SJ", "FA", "77", "71", "72")
# ASCII, matched whole: \d takes any Unicode digit and $ a trailing newline.
_MEMBER = re.compile(r"[A-Za-z0-9-]{1,40}")
_NUMBER = re.compile(r"[0-9]{1,9}(\.[0-9]{1,9})?")


@dataclass
class Entity:
    """A 2010 loop: the NM1 and the segments that follow it."""

    loop: str
    nm1: Segment
    segments: list[Segment] = field(default_factory=list)

    def first(self, tag: str) -> Segment | None:
        return next((s for s in self.segments if s.tag == tag), None)


@dataclass
class Level:
    """A 2000 loop: its HL, its own segments, its 2010 loops."""

    hl: Segment
    segments: list[Segment] = field(default_factory=list)
    entities: list[Entity] = field(default_factory=list)

    @property
    def code(self) -> str:
        return self.hl.get(3)

    @property
    def loop(self) -> str:
        return LEVEL_LOOPS.get(self.code, "")

    def first(self, tag: str, qualifier: str | None = None) -> Segment | None:
        return next((s for s in self.segments if s.tag == tag and (qualifier is None or s.get(1) == qualifier)), None)

    def all(self, tag: str) -> list[Segment]:
        return [s for s in self.segments if s.tag == tag]

    @property
    def entity(self) -> Entity | None:
        return self.entities[0] if self.entities else None


@dataclass
class Request278:
    transaction: TransactionSet
    delimiters: Delimiters
    bht: Segment | None = None
    umo: Level | None = None
    requester: Level | None = None
    subscriber: Level | None = None
    dependent: Level | None = None
    event: Level | None = None
    services: list[Level] = field(default_factory=list)

    @property
    def reference(self) -> str:
        return self.bht.get(3) if self.bht is not None else ""

    @property
    def date(self) -> dt.date | None:
        return _date(self.bht.get(4)) if self.bht is not None else None


def _date(value: str) -> dt.date | None:
    if len(value) != 8 or not value.isascii() or not value.isdigit():  # '²'.isdigit(), and int('²') raises
        return None
    try:
        return dt.date(int(value[:4]), int(value[4:6]), int(value[6:]))
    except ValueError:
        return None


def _period(dtp: Segment) -> tuple[dt.date | None, dt.date | None] | None:
    """DTP*xxx*D8*CCYYMMDD or RD8*CCYYMMDD-CCYYMMDD; None when malformed."""
    fmt, value = dtp.get(2), dtp.get(3)
    if fmt == "D8":
        day = _date(value)
        return (day, day) if day else None
    if fmt == "RD8" and value.count("-") == 1:
        start, end = (_date(v) for v in value.split("-"))
        return (start, end) if start and end and start <= end else None
    return None


class _Checker:
    def __init__(self, ts: TransactionSet, d: Delimiters) -> None:
        self.ts, self.d = ts, d

    def segment(self, seg: Segment, loop: str, code: str, *elements: ElementError) -> None:
        self.ts.errors.append(SegmentError(seg.tag, self.ts.position(seg), loop, code, tuple(elements)))

    def missing(self, tag: str, at: Segment, loop: str) -> None:
        self.ts.errors.append(SegmentError(tag, self.ts.position(at), loop, "3"))

    def elements(self, seg: Segment, loop: str, *errors: ElementError | None) -> None:
        found = tuple(e for e in errors if e is not None)
        if found:
            self.segment(seg, loop, "8", *found)


def _required(seg: Segment, n: int, ref: str) -> ElementError | None:
    return ElementError(n, "1", "", None, ref) if not seg.get(n) else None


def _code(seg: Segment, n: int, ref: str, allowed: tuple[str, ...] | frozenset[str] | dict[str, str],
          required: bool = True) -> ElementError | None:
    value = seg.get(n)
    if not value:
        return ElementError(n, "1", "", None, ref) if required else None
    return None if value in allowed else ElementError(n, "7", value, None, ref)


def parse_278(ts: TransactionSet, delimiters: Delimiters) -> Request278:
    """The loops of a 278 request; syntax and implementation faults are added to ``ts.errors``."""
    request = Request278(ts, delimiters)
    check = _Checker(ts, delimiters)
    body = ts.body
    if not body or body[0].tag != "BHT":
        check.missing("BHT", body[0] if body else ts.header, "")
    else:
        bht = request.bht = body[0]
        check.elements(bht, "", _code(bht, 1, "1005", ("0007",)), _code(bht, 2, "353", ("13",)),
                       _required(bht, 3, "127"),
                       None if _date(bht.get(4)) else ElementError(4, "8" if bht.get(4) else "1", bht.get(4), None,
                                                                   "373"))
    _assign_levels(check, request, _levels(check, body[1 if request.bht else 0:]))
    anchor = ts.trailer or (body[-1] if body else ts.header)
    for found, code in ((request.umo, "20"), (request.requester, "21"), (request.subscriber, "22"),
                        (request.event, "EV")):
        if found is None:
            check.ts.errors.append(SegmentError("HL", ts.position(anchor), LEVEL_LOOPS[code], "3"))
    _check_entities(check, request)
    _check_event(check, request)
    for service in request.services:
        _check_service(check, service)
    return request


def _levels(check: _Checker, segments: Sequence[Segment]) -> list[Level]:
    """The HL levels in order, each with its entities (NM1 and the segments after it) and its own
    segments."""
    levels: list[Level] = []
    current: Level | None = None
    entity: Entity | None = None
    by_id: dict[str, Level] = {}
    for seg in segments:
        if seg.tag == "HL":
            current, entity = Level(seg), None
            levels.append(current)
            _check_hl(check, seg, by_id, len(levels))
            by_id[seg.get(1)] = current
        elif current is None:
            check.segment(seg, "", "2")  # unexpected segment before the first HL
        elif seg.tag == "NM1":
            entity = Entity(ENTITY_LOOPS.get(current.code, ""), seg)
            current.entities.append(entity)
        elif entity is not None:
            entity.segments.append(seg)
        else:
            current.segments.append(seg)
    return levels


def _assign_levels(check: _Checker, request: Request278, levels: list[Level]) -> None:
    """The first level of each kind is the request's; services are all kept; a second of another
    kind occurs over its maximum."""
    for level in levels:
        code = level.code
        if code == "20" and request.umo is None:
            request.umo = level
        elif code == "21" and request.requester is None:
            request.requester = level
        elif code == "22" and request.subscriber is None:
            request.subscriber = level
        elif code == "23" and request.dependent is None:
            request.dependent = level
        elif code == "EV" and request.event is None:
            request.event = level
        elif code == "SS":
            request.services.append(level)
        elif code in LEVEL_LOOPS:
            check.segment(level.hl, level.loop, "4")  # loop occurs over maximum times


def _check_hl(check: _Checker, hl: Segment, by_id: Mapping[str, Level], count: int) -> None:
    code = hl.get(3)
    loop = LEVEL_LOOPS.get(code, "")
    errors: list[ElementError | None] = [
        None if hl.get(1) == str(count) else ElementError(1, "7", hl.get(1), None, "628"),
        _code(hl, 3, "735", LEVEL_LOOPS),
        _code(hl, 4, "736", ("0", "1"), required=code != "20"),
    ]
    parent = hl.get(2)
    if code in PARENT_LEVELS:
        parent_code = by_id[parent].code if parent in by_id else ""
        if parent_code not in PARENT_LEVELS[code]:
            errors.append(ElementError(2, "7" if parent else "1", parent, None, "734"))
    check.elements(hl, loop, *errors)


def _check_entities(check: _Checker, request: Request278) -> None:
    rules = ((request.umo, ("X3",)), (request.requester, None), (request.subscriber, ("IL",)),
             (request.dependent, ("QC",)))
    for level, entities in rules:
        if level is None:
            continue
        loop = ENTITY_LOOPS[level.code]
        nm1 = level.entity.nm1 if level.entity else None
        if nm1 is None:
            check.missing("NM1", level.hl, loop)
            continue
        errors: list[ElementError | None] = [
            _code(nm1, 1, "98", entities) if entities else _required(nm1, 1, "98"),
            _code(nm1, 2, "1065", ("1", "2")),
            _required(nm1, 3, "1035") if nm1.get(2) == "2" or level.code in ("22", "23") else None,
        ]
        if level.code in ("20", "21", "22"):
            errors += [_required(nm1, 8, "66"), _required(nm1, 9, "67")]
        if level.code == "22":
            errors.append(_code(nm1, 8, "66", ("MI",)))
        check.elements(nm1, loop, *errors)
        for seg in level.entity.segments if level.entity is not None else ():
            if seg.tag == "DMG":
                check.elements(seg, loop, _code(seg, 1, "1250", ("D8",)),
                               None if _date(seg.get(2)) else ElementError(2, "8" if seg.get(2) else "1", seg.get(2),
                                                                           None, "1251"),
                               _code(seg, 3, "1068", ("F", "M", "U"), required=False))
            elif seg.tag == "N4":
                check.elements(seg, loop, _required(seg, 1, "19"))


def _check_dtp(check: _Checker, seg: Segment, loop: str) -> None:
    if _period(seg) is None:
        bad_format = seg.get(2) not in ("D8", "RD8")
        check.elements(seg, loop, ElementError(2 if bad_format else 3, "7" if bad_format else "8",
                                               seg.get(2) if bad_format else seg.get(3), None,
                                               "1250" if bad_format else "1251"))


def _check_um(check: _Checker, um: Segment, loop: str) -> None:
    facility = um.get(4)
    d = check.d
    errors: list[ElementError | None] = [
        _required(um, 1, "1525"),
        _code(um, 2, "1322", codes.CERTIFICATION_TYPES),
        _code(um, 6, "1338", codes.LEVELS_OF_SERVICE, required=False),
    ]
    if facility and um.component(4, 2, d) not in ("A", "B"):
        errors.append(ElementError(4, "7", um.component(4, 2, d), 2, "1332"))
    check.elements(um, loop, *errors)


def _check_event(check: _Checker, request: Request278) -> None:
    event = request.event
    if event is None:
        return
    um = event.first("UM")
    if um is None:
        check.missing("UM", event.hl, "2000E")
    else:
        _check_um(check, um, "2000E")
    for seg in event.segments:
        if seg.tag == "DTP":
            _check_dtp(check, seg, "2000E")
        elif seg.tag == "HI":
            errors = []
            for n, composite in enumerate(seg.elements, start=1):
                qualifier, _, code = composite.partition(check.d.component)
                if composite and (qualifier not in (*PRINCIPAL, *OTHER_ICD10, *ICD9) or not code.split(
                        check.d.component)[0]):
                    errors.append(ElementError(n, "7", composite, 1, "1270"))
            check.elements(seg, "2000E", *errors)


def _check_service(check: _Checker, service: Level) -> None:
    um = service.first("UM")
    if um is None:
        check.missing("UM", service.hl, "2000F")
    else:
        _check_um(check, um, "2000F")
    d = check.d
    for seg in service.segments:
        if seg.tag == "DTP":
            _check_dtp(check, seg, "2000F")
        elif seg.tag in ("SV1", "SV2"):
            composite, quantity = (1, 4) if seg.tag == "SV1" else (2, 5)
            errors: list[ElementError | None] = []
            if seg.get(composite) and not seg.component(composite, 2, d):
                errors.append(ElementError(composite, "1", "", 2, "234"))
            if seg.get(quantity) and not _NUMBER.fullmatch(seg.get(quantity)):
                errors.append(ElementError(quantity, "6", seg.get(quantity), None, "380"))
            check.elements(seg, "2000F", *errors)
        elif seg.tag == "HSD" and seg.get(2) and not _NUMBER.fullmatch(seg.get(2)):
            check.elements(seg, "2000F", ElementError(2, "6", seg.get(2), None, "380"))


# -- mapping -----------------------------------------------------------------------------------


def idempotency_key(submitter_id: str, reference: str, trace: str) -> str:
    digest = hashlib.sha256("\x1f".join((submitter_id, reference, trace)).encode()).hexdigest()
    return f"x12-{digest[:48]}"


def request_278_to_command(request: Request278, submitter_id: str, payers: Mapping[str, PayerProfile]
                           ) -> intake_pb2.SubmitRequestRequest | list[Rejection]:
    """The command for a syntactically accepted 278 request (``parse_278`` found no error), or the
    rejections that a 278 response reports in AAA segments."""
    if not submitter_id:
        raise ValueError("submitter_id is required")
    mapper = _Mapper(request, payers)
    mapper.run()
    if mapper.rejections:
        return mapper.rejections
    trace = request.event.first("TRN") if request.event else None
    mapper.command.idempotency_key = idempotency_key(submitter_id, request.reference, trace.get(2) if trace else "")
    return mapper.command


class _Mapper:
    def __init__(self, request: Request278, payers: Mapping[str, PayerProfile]) -> None:
        self.r, self.payers, self.d = request, payers, request.delimiters
        self.rejections: list[Rejection] = []
        self.command = intake_pb2.SubmitRequestRequest()
        self.profile: PayerProfile | None = None

    def reject(self, loop: str, code: str, message: str, element: str = "", line: int = 0,
               followup: str = "C") -> None:
        self.rejections.append(Rejection(loop, code, followup, message, element=element, line=line))

    def run(self) -> None:
        r = self.r
        if r.umo is None or r.requester is None or r.subscriber is None or r.event is None:
            raise ValueError("parse_278 reported this request's missing loops; map only accepted requests")
        self.payer(r.umo)
        self.requester(r.requester)
        self.subscriber(r.subscriber)
        if r.dependent is not None:
            self.reject("2010D", "64", "the patient needs an own member id: send the patient as the subscriber "
                                       "(2000C) with that id", element="2010D-NM109")
        self.event(r.event)
        self.services(r.event)
        self.age(r.dependent or r.subscriber)

    def payer(self, umo: Level) -> None:
        nm1 = umo.entity.nm1 if umo.entity else None
        payer_id = nm1.get(9) if nm1 else ""
        self.profile = self.payers.get(payer_id)
        if self.profile is None:
            self.reject("2010A", "79", f"payer id {payer_id[:20]!r} is not one this platform reviews for",
                        element="2010A-NM109", followup="N")
            return
        self.command.coverage.line_of_business = self.profile.line_of_business
        self.command.coverage.plan_id = self.profile.plan_id

    def requester(self, level: Level) -> None:
        nm1 = level.entity.nm1 if level.entity else None
        if nm1 is None or nm1.get(8) != "XX" or not is_npi(nm1.get(9)):
            self.reject("2010B", "43", "the requester is identified by a valid NPI (NM108 XX, 10 digits with a "
                                       "Luhn check digit)", element="2010B-NM109")
            return
        self.command.requesting_provider.CopyFrom(types_pb2.Provider(npi=nm1.get(9), name=_name(nm1)))

    def subscriber(self, level: Level) -> None:
        entity = level.entity
        if entity is None:  # the envelope check refused a 2000C without its 2010C
            raise ValueError("2000C without 2010C")
        member = entity.nm1.get(9)
        if not _MEMBER.fullmatch(member):
            self.reject("2010C", "72", "a member id is 1-40 letters, digits or '-'", element="2010C-NM109")
        else:
            self.command.member_id = member
        if not self.command.coverage.plan_id:
            for ref in entity.segments:
                if ref.tag == "REF" and ref.get(1) in ("1L", "6P", "IG") and ref.get(2):
                    self.command.coverage.plan_id = ref.get(2)[:100]
                    break
        n4 = entity.first("N4")
        state = n4.get(2).upper() if n4 is not None else ""
        if state and not is_state(state):
            self.reject("2010C", "15", f"{state[:10]!r} is not a two-letter USPS state code", element="2010C-N402")
        elif state:
            self.command.coverage.member_state = state
        elif self.profile is not None and self.profile.state:
            self.command.coverage.member_state = self.profile.state
        else:
            self.reject("2010C", "15", "the member's state (N4) decides which regulatory clock applies",
                        element="2010C-N402")
        dmg = entity.first("DMG")
        born = _date(dmg.get(2)) if dmg is not None else None
        if born is not None and self.r.date is not None and born > self.r.date:
            self.reject("2010C", "58", "the date of birth is after the request's date", element="2010C-DMG02")

    def event(self, event: Level) -> None:
        um = event.first("UM")
        if um is None:  # the structure check refused a 2000E without UM
            raise ValueError("2000E without UM")
        certification = um.get(2)
        review_type = codes.REVIEW_TYPE_OF_CERTIFICATION.get(certification)
        if review_type is None:
            self.reject("2000E", "33", f"certification type {certification!r} "
                                       f"({codes.CERTIFICATION_TYPES.get(certification, '?')}) concerns an existing "
                                       "request; this door takes initial, renewal and extension requests",
                        element="2000E-UM02", followup="N")
        else:
            self.command.review_type = review_type
        expedited = um.get(6) in codes.EXPEDITED_LEVELS
        self.command.urgency = types_pb2.URGENCY_EXPEDITED if expedited else types_pb2.URGENCY_STANDARD
        principal_seen = False
        for hi in event.all("HI"):
            for composite in hi.elements:
                if not composite:
                    continue
                qualifier, _, rest = composite.partition(self.d.component)
                code = rest.split(self.d.component)[0]
                if qualifier in ICD9:
                    self.reject("2000E", "AF", "ICD-9-CM diagnoses: the platform reviews ICD-10-CM", element="2000E-HI")
                    return
                if not is_icd10cm(code):
                    self.reject("2000E", "AF", f"{code[:10]!r} is not an ICD-10-CM code", element="2000E-HI")
                    return
                primary = qualifier in PRINCIPAL and not principal_seen
                principal_seen = principal_seen or primary
                self.command.diagnoses.append(types_pb2.Diagnosis(code=_dotted(code), primary=primary))
        if not self.command.diagnoses:
            self.reject("2000E", "AF", "at least one ICD-10-CM diagnosis (HI): criteria are chosen by diagnosis",
                        element="2000E-HI")
        elif not principal_seen:
            self.command.diagnoses[0].primary = True

    def services(self, event: Level) -> None:
        r = self.r
        if not r.services:
            self.reject("2000E", "AG", "the platform reviews procedures: send each as a service (2000F) with its "
                                       "CPT/HCPCS code", element="2000F-SV1")
            return
        if len(r.services) > MAX_LINES:
            self.reject("2000E", "33", f"at most {MAX_LINES} services per request")
            return
        fallback = None
        for qualifier in ("AAH", "435"):
            dtp = event.first("DTP", qualifier)
            if dtp is not None and _period(dtp):
                fallback = _period(dtp)
                break
        providers: list[tuple[str, str]] = []
        for n, service in enumerate(r.services, start=1):
            self.service(n, service, event, fallback)
            chosen = _servicing(service.entities) or _servicing(event.entities)
            if chosen is not None and chosen not in providers:
                providers.append(chosen)
        if len(providers) > 1:
            self.reject("2000F", "33", "one servicing provider per request; send one request per provider",
                        element="2010F-NM109", line=1)
        elif providers:
            npi, name = providers[0]
            if not is_npi(npi):
                self.reject("2000F", "33", f"the service provider's NPI {npi[:12]!r} is not valid",
                            element="2010F-NM109", line=1)
            else:
                self.command.servicing_provider.CopyFrom(types_pb2.Provider(npi=npi, name=name))
        elif self.command.HasField("requesting_provider"):
            self.command.servicing_provider.CopyFrom(self.command.requesting_provider)
        review = self.command.review_type
        on = r.date
        lines = self.command.service_lines
        if review == types_pb2.REVIEW_TYPE_PROSPECTIVE and on is not None and lines and all(
                dt.date(ln.start_date.year, ln.start_date.month, ln.start_date.day) < on for ln in lines):
            self.command.review_type = types_pb2.REVIEW_TYPE_RETROSPECTIVE

    def service(self, n: int, service: Level, event: Level,
                fallback: tuple[dt.date | None, dt.date | None] | None) -> None:
        d = self.d
        line = types_pb2.ServiceLine(line_number=n)
        sv = service.first("SV1") or service.first("SV2")
        composite = 1 if sv is not None and sv.tag == "SV1" else 2
        if sv is None or sv.component(composite, 1, d) != "HC":
            self.reject("2000F", "AG", "a CPT/HCPCS procedure code (SV101 or SV202 with qualifier HC)",
                        element="2000F-SV1", line=n)
            return
        code = sv.component(composite, 2, d)
        if not is_procedure_code(code):
            self.reject("2000F", "AG", f"{code[:10]!r} is neither CPT nor HCPCS Level II", element="2000F-SV1",
                        line=n)
            return
        line.procedure_code = code
        for k in range(3, 7):
            modifier = sv.component(composite, k, d)
            if modifier:
                line.modifiers.append(modifier)
        quantity = sv.get(4 if sv.tag == "SV1" else 5)
        hsd = service.first("HSD")
        if not quantity and hsd is not None:
            quantity = hsd.get(2)
        units = float(quantity) if quantity and _NUMBER.fullmatch(quantity) else 1.0
        if units != int(units) or not 1 <= units <= 9999:
            self.reject("2000F", "33", f"quantity {quantity!r}: whole units from 1 to 9999", element="2000F-SV104",
                        line=n)
            return
        line.units = int(units)
        dtp = service.first("DTP", "472")
        period = _period(dtp) if dtp is not None else fallback
        if period is None or period[0] is None:
            self.reject("2000F", "57", "the service date (DTP*472) decides eligibility and clocks",
                        element="2000F-DTP03", line=n)
            return
        start, end = period
        if start is None:
            raise ValueError("a service period without its start")
        line.start_date.year, line.start_date.month, line.start_date.day = start.year, start.month, start.day
        if end is not None and end != start:
            line.end_date.year, line.end_date.month, line.end_date.day = end.year, end.month, end.day
        place = _place(service.first("UM"), d) or _place(event.first("UM"), d)
        if not place:
            self.reject("2000F", "33", "place of service (UM04 with qualifier B) is missing or not one the "
                                       "platform reviews", element="2000F-UM04", line=n)
            return
        line.place_of_service = place
        self.command.service_lines.append(line)

    def age(self, patient: Level) -> None:
        dmg = patient.entity.first("DMG") if patient.entity else None
        born, on = (_date(dmg.get(2)) if dmg is not None else None), self.r.date
        if born is None or on is None or born > on:
            return
        self.command.clinical_facts.append(types_pb2.ClinicalFact(name="age_years", number_value=codes.age_on(born, on),
                                                                  unit="years"))


def _place(um: Segment | None, d: Delimiters) -> types_pb2.PlaceOfService.ValueType:
    if um is None or not um.get(4):
        return types_pb2.PLACE_OF_SERVICE_UNSPECIFIED
    value, qualifier = um.component(4, 1, d), um.component(4, 2, d)
    if qualifier == "B" and value.isascii() and value.isdigit() and int(value) in codes.PLACES_OF_SERVICE:
        return types_pb2.PlaceOfService.ValueType(int(value))
    if qualifier == "A":
        return codes.place_from_type_of_bill(value)
    return types_pb2.PLACE_OF_SERVICE_UNSPECIFIED


def _servicing(entities: list[Entity]) -> tuple[str, str] | None:
    ranked = sorted((e for e in entities if e.nm1.get(1) in SERVICING_ROLES and e.nm1.get(8) == "XX"),
                    key=lambda e: SERVICING_ROLES.index(e.nm1.get(1)))
    return (ranked[0].nm1.get(9), _name(ranked[0].nm1)) if ranked else None


def _name(nm1: Segment) -> str:
    return " ".join(p for p in (nm1.get(4), nm1.get(3)) if p)[:200]


def _dotted(code: str) -> str:
    """X12 sends ICD-10-CM without the dot: M5416 -> M54.16."""
    code = code.upper()
    return code if "." in code or len(code) <= 3 else f"{code[:3]}.{code[3:]}"
