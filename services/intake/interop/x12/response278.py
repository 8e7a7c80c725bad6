"""The 278 response (005010X217, BHT02 11) from intake's view of a request, or from rejections.

The response echoes the request's loops (UMO, requester, subscriber, dependent, patient event and
each service, with their names and trace numbers) and adds the review outcome:

* per service (2000F): ``HCR`` with the action code (A1, A2, A3, A4, A6, C, CT, NA) and, for a
  certified service, the authorization number as the review identification number (HCR02);
  certification dates ``DTP*102`` (issue), ``DTP*007`` (effective), ``DTP*036`` (expiration); the
  certified quantity in ``HSD``;
* per patient event (2000E): ``REF*NT`` the platform's request id (the administrative reference
  to quote in follow-ups) and ``MSG`` with the determination's reasons in words (HCR03 takes X12's
  external code list 886, which the platform does not have);
* rejections as ``AAA*N**<reason>*<follow-up>`` in the loop they concern; a rejected request has
  no HCR.
"""

from __future__ import annotations

from collections.abc import Sequence

from ur.intake.v1 import intake_pb2

from services.intake.interop.answers import LineAnswer, Rejection, line_answers, rejection_of
from services.intake.interop.x12.edi import X12_DEFAULT, Delimiters, Segment, clean
from services.intake.interop.x12.envelope import VERSION, Envelope, wrap
from services.intake.interop.x12.request278 import Level, Request278

MSG_LIMIT = 264


def _fields(seg: Segment) -> tuple[str, ...]:
    return (seg.tag, *seg.elements)


def response_278(request: Request278, envelope: Envelope, *, view: intake_pb2.RequestView | None = None,
                 rejections: Sequence[Rejection] = (), transaction_control: str = "0001") -> str:
    """An interchange with one 278 response to ``request``: the outcome of ``view`` (what
    ``GetRequest`` returned for the command made from it), or ``rejections`` (what
    ``request_278_to_command`` returned, or e.g. 42 unable to respond when intake is unavailable).
    An ineligible view is answered with its rejection (75 or 78 in 2010C)."""
    body = response_278_set(request, view=view, rejections=rejections, transaction_control=transaction_control)
    return wrap(envelope, "HI", VERSION, [body], X12_DEFAULT)


def response_278_set(request: Request278, *, view: intake_pb2.RequestView | None = None,
                     rejections: Sequence[Rejection] = (), transaction_control: str = "0001") -> list[tuple[str, ...]]:
    """The 278 response transaction set (ST to SE) :func:`response_278` wraps, for an interchange
    answering several requests at once (``envelope.wrap`` around a list of them)."""
    if view is not None and not rejections:
        ineligible = rejection_of(view)
        if ineligible is not None:
            rejections, view = [ineligible], None
    return _Writer(request, view, list(rejections), request.delimiters).segments(transaction_control)


class _Writer:
    def __init__(self, request: Request278, view: intake_pb2.RequestView | None, rejections: list[Rejection],
                 delimiters: Delimiters) -> None:
        self.r = request
        self.view = view
        self.rejections = rejections
        self.received = delimiters
        self.answers = {a.line_number: a for a in line_answers(view)} if view is not None else {}
        self.out: list[tuple[str, ...]] = []
        self.hl = 0

    def aaa(self, loop: str, line: int = 0) -> None:
        for rejection in self.rejections:
            if rejection.loop == loop and (loop != "2000F" or rejection.line == line):
                self.out.append(("AAA", "N", "", rejection.code, rejection.followup))

    def level(self, parent: int, code: str, has_children: bool) -> int:
        self.hl += 1
        self.out.append(("HL", str(self.hl), str(parent) if parent else "", code, "1" if has_children else "0"))
        return self.hl

    def recomposed(self, seg: Segment) -> tuple[str, ...]:
        """A received segment in the outgoing delimiters (composites re-joined)."""
        d = self.received
        return (seg.tag, *(":".join(e.split(d.component)) if d.component != ":" else e for e in seg.elements))

    def entity(self, level: Level | None, loop: str, demographics: bool = False) -> None:
        if level is None or level.entity is None:
            return
        self.out.append(self.recomposed(level.entity.nm1))
        self.aaa(loop)
        dmg = level.entity.first("DMG") if demographics else None
        if dmg is not None:
            self.out.append(self.recomposed(dmg))

    def segments(self, control: str) -> list[tuple[str, ...]]:
        r = self.r
        bht = r.bht
        self.out = [("ST", "278", control, VERSION),
                    ("BHT", "0007", "11", bht.get(3) if bht else "", bht.get(4) if bht else "",
                     bht.get(5) if bht else "")]
        umo = self.level(0, "20", True)
        self.aaa("2000A")
        self.entity(r.umo, "2010A")
        requester = self.level(umo, "21", True)
        self.entity(r.requester, "2010B")
        subscriber = self.level(requester, "22", True)
        self.entity(r.subscriber, "2010C", demographics=True)
        patient = subscriber
        if r.dependent is not None:
            patient = self.level(subscriber, "23", True)
            self.entity(r.dependent, "2010D", demographics=True)
        if r.event is not None:
            self.event(r.event, patient)
        self.out.append(("SE", str(len(self.out) + 1), control))
        return self.out

    def trace(self, level: Level) -> None:
        for trn in level.all("TRN"):
            self.out.append(("TRN", "2", *trn.elements[1:]))

    def event(self, event: Level, parent: int) -> None:
        ev = self.level(parent, "EV", bool(self.r.services))
        self.trace(event)
        self.aaa("2000E")
        um = event.first("UM")
        if um is not None:
            self.out.append(self.recomposed(um))
        if self.view is not None and self.view.request_id:
            self.out.append(("REF", "NT", clean(self.view.request_id, limit=50)))
        for seg in event.all("DTP"):
            self.out.append(self.recomposed(seg))
        reasons = [f"line {a.line_number} {a.action} - {'; '.join(a.reasons)}" for a in self.answers.values()
                   if a.reasons]
        if reasons:
            self.out.append(("MSG", clean(" | ".join(reasons), limit=MSG_LIMIT)))
        for n, service in enumerate(self.r.services, start=1):
            self.service(service, n, ev)

    def service(self, service: Level, n: int, parent: int) -> None:
        self.level(parent, "SS", False)
        self.trace(service)
        self.aaa("2000F", n)
        um = service.first("UM")
        if um is not None:
            self.out.append(self.recomposed(um))
        answer = self.answers.get(n) if not self.rejections else None
        if answer is not None:
            self.out.append(("HCR", answer.action, clean(answer.authorization_number or "", limit=50)))
        dtp = service.first("DTP", "472")
        if dtp is not None:
            self.out.append(self.recomposed(dtp))
        if answer is not None and answer.certified:
            self.certification(answer)
        sv = service.first("SV1") or service.first("SV2")
        if sv is not None:
            self.out.append(self.recomposed(sv))
        if answer is not None and answer.certified and answer.authorized_units is not None:
            hsd = service.first("HSD")
            self.out.append(("HSD", hsd.get(1) if hsd is not None and hsd.get(1) else "FL",
                             str(answer.authorized_units)))

    def certification(self, answer: LineAnswer) -> None:
        if answer.issued_on is not None:
            self.out.append(("DTP", "102", "D8", answer.issued_on.strftime("%Y%m%d")))
        if answer.authorized_start is not None:
            self.out.append(("DTP", "007", "D8", answer.authorized_start.strftime("%Y%m%d")))
        end = answer.authorized_end or answer.authorized_start
        if end is not None:
            self.out.append(("DTP", "036", "D8", end.strftime("%Y%m%d")))
