"""Notices of determinations: the letters a member (or injured worker), the requesting provider and,
in workers' compensation, the claims adjuster and the attorney receive. Pure: no I/O (the PDF is
rendered by an adapter from the same sections).

What a notice says, and why (each a rule the platform keeps):

* the decision per service in plain language (CMS-0057-F; 42 CFR 422.568(e)(1), 438.10(d): readable
  and understandable; member letters are written to an 8th-grade reading level, which a test
  measures);
* for anything adverse (denied, approved in part, modified, deemed denied, upheld on appeal): the
  specific reason, built from the criteria's own decision tree (the nearest path, see
  ``nearest.py``), the criterion it rests on (id, version, title, public sources), the reviewer's
  credential, the offer of a peer-to-peer conversation (URAC: within one business day) and the appeal
  rights of the regime with the last day to file, the next level of review and the citations
  (``policy/appeal-rights.yaml``);
* a request for information says what is needed by when; an extension says why and the new date
  (Medicare Advantage requires a written notice of the extension with the right to an expedited
  grievance, 42 CFR 422.568(b)(1)(ii)); a deemed denial says the deadline passed and that it counts
  as a denial that may be appealed (42 CFR 438.404(c)(5)).

Member letters avoid codes and jargon in their prose; the codes, criteria ids and citations sit in
*reference* sections (what the readability test leaves out: citations are not prose).
"""

from __future__ import annotations

import datetime as dt
import enum
import functools
import textwrap
from collections.abc import Sequence
from dataclasses import dataclass, field

from services.review.domain.appeals import AppealRight


class NoticeKind(enum.StrEnum):
    APPROVAL = "approval"
    PARTIAL_APPROVAL = "partial_approval"
    MODIFICATION = "modification"
    DENIAL = "denial"
    REQUEST_FOR_INFORMATION = "request_for_information"
    EXTENSION = "extension"
    DEEMED_DENIAL = "deemed_denial"
    APPEAL_DECISION = "appeal_decision"


ADVERSE_KINDS = frozenset({NoticeKind.PARTIAL_APPROVAL, NoticeKind.MODIFICATION, NoticeKind.DENIAL,
                           NoticeKind.DEEMED_DENIAL})
MEMBER, INJURED_WORKER, PROVIDER, ADJUSTER, ATTORNEY = (
    "member", "injured_worker", "requesting_provider", "adjuster", "attorney")
#: Who reads the member's plain-language letter (a copy of it goes to the adjuster and the attorney).
PLAIN_READERS = frozenset({MEMBER, INJURED_WORKER, ADJUSTER, ATTORNEY})
SENDER = "Utilization Management"
PEER_TO_PEER_HOURS = "one business day"


class ServiceAction(enum.StrEnum):
    APPROVED = "approved"
    APPROVED_IN_PART = "approved_in_part"
    MODIFIED = "modified"
    DENIED = "denied"
    INFORMATION_REQUESTED = "information_requested"
    PENDED = "pended"


@dataclass(frozen=True)
class Party:
    name: str
    address_lines: tuple[str, ...] = ()
    npi: str = ""


@dataclass(frozen=True)
class Criterion:
    id: str
    version: str
    title: str
    sources: tuple[str, ...] = ()
    condition: str = ""  # the condition an adverse decision cites, by description


@dataclass(frozen=True)
class Shortfall:
    """A condition of the nearest path, as a notice states it."""

    description: str
    stated: str = ""  # the value the request gave, e.g. "2 weeks"


@dataclass(frozen=True)
class SpecificReason:
    """The nearest path of the criteria, for a notice (``nearest.NearestPath`` as carried)."""

    met: tuple[str, ...] = ()
    unmet: tuple[Shortfall, ...] = ()
    missing: tuple[str, ...] = ()
    not_applicable: tuple[str, ...] = ()
    summary: str = ""


@dataclass(frozen=True)
class ServiceDecision:
    """One service line of the notice."""

    line_number: int
    procedure_code: str
    service: str  # plain name ("lumbar spine MRI"), or the code when no criteria set names it
    action: ServiceAction
    requested_units: int
    approved_units: int = 0
    unit: str = "units"
    start: dt.date | None = None
    end: dt.date | None = None
    reviewer_reason: str = ""  # the reviewer's own words, for an adverse decision
    specific: SpecificReason | None = None
    criterion: Criterion | None = None
    decider_name: str = ""
    decider_credential: str = ""
    decider_role: str = ""
    next_review_date: dt.date | None = None
    requested_facts: tuple[str, ...] = ()
    information_due: dt.date | None = None

    @property
    def adverse(self) -> bool:
        return self.action in (ServiceAction.DENIED, ServiceAction.APPROVED_IN_PART, ServiceAction.MODIFIED)


@dataclass(frozen=True)
class AppealDecision:
    appeal_id: str
    outcome: str  # overturned, partially_overturned, upheld
    forwarded_to: str = ""


@dataclass(frozen=True)
class NoticeFacts:
    """Everything a notice of one determination says; :func:`compose` writes it for one reader."""

    kind: NoticeKind
    request_id: str
    determination_id: str
    member_id: str
    member: Party
    line_of_business: str
    member_state: str
    requesting_provider: Party
    issued_on: dt.date
    services: tuple[ServiceDecision, ...]
    rights: AppealRight | None = None
    claim_number: str = ""  # workers' comp
    new_due: dt.datetime | None = None  # extension
    extension_ground: str = ""
    missed_due: dt.datetime | None = None  # deemed denial
    appeal: AppealDecision | None = None

    @property
    def workers_comp(self) -> bool:
        return self.line_of_business == "workers_comp"

    @property
    def file_by(self) -> dt.date | None:
        return self.rights.file_by(self.issued_on) if self.rights is not None else None


@dataclass(frozen=True)
class Section:
    heading: str
    paragraphs: tuple[str, ...] = ()
    items: tuple[str, ...] = ()
    reference: bool = False  # codes and citations: not prose (left out of the readability measure)


@dataclass(frozen=True)
class Notice:
    notice_id: str
    request_id: str
    determination_id: str
    member_id: str
    kind: NoticeKind
    recipient_role: str
    recipient: Party
    issued_at: dt.datetime
    line_numbers: tuple[int, ...]
    subject: str
    sections: tuple[Section, ...] = field(default=())
    about: str = ""  # "About: Maria Lopez, member ID MA100001"

    @property
    def text(self) -> str:
        return render_text(self)

    @property
    def plain(self) -> bool:
        return self.recipient_role in PLAIN_READERS

    def prose(self) -> str:
        """The letter's prose without its reference sections (what a readability measure reads)."""
        parts = [self.subject]
        for s in self.sections:
            if not s.reference:
                parts.extend(s.paragraphs)
                parts.extend(s.items)
        return "\n".join(parts)


# -- composing -----------------------------------------------------------------------------------

def long_date(d: dt.date) -> str:
    return f"{d.strftime('%B')} {d.day}, {d.year}"


def _when(d: dt.datetime) -> str:
    return f"{long_date(d.date())} at {d.strftime('%H:%M')} UTC"


def _lob(lob: str) -> str:
    return {"medicare_advantage": "Medicare Advantage", "medicaid": "Medicaid", "commercial": "health plan",
            "workers_comp": "workers' compensation"}.get(lob, lob.replace("_", " "))


def _amount(s: ServiceDecision, units: int) -> str:
    unit = s.unit if units != 1 else s.unit.rstrip("s")
    return f"{units} {unit}"


def _period(s: ServiceDecision) -> str:
    if s.start is None:
        return ""
    if s.end is None or s.end == s.start:
        return f" on {long_date(s.start)}"
    return f" from {long_date(s.start)} to {long_date(s.end)}"


def _capital(text: str) -> str:
    return text[:1].upper() + text[1:]


def subject_of(facts: NoticeFacts) -> str:
    kind = facts.kind
    if kind is NoticeKind.APPEAL_DECISION and facts.appeal is not None:
        return {"overturned": "We changed our decision after your appeal",
                "partially_overturned": "We changed part of our decision after your appeal"}.get(
            facts.appeal.outcome, "We did not change our decision after your appeal")
    return {NoticeKind.APPROVAL: "We approved your request",
            NoticeKind.PARTIAL_APPROVAL: "We approved part of your request",
            NoticeKind.MODIFICATION: "We approved your request with changes",
            NoticeKind.DENIAL: "We did not approve your request",
            NoticeKind.REQUEST_FOR_INFORMATION: "We need more information to decide",
            NoticeKind.EXTENSION: "We need more time to decide",
            NoticeKind.DEEMED_DENIAL: "We did not decide your request in time"}.get(kind, "About your request")


def _decision_items(facts: NoticeFacts, plain: bool) -> tuple[str, ...]:
    items = []
    for s in facts.services:
        name = _capital(s.service) if plain else f"{_capital(s.service)} ({s.procedure_code}, line {s.line_number})"
        if s.action is ServiceAction.APPROVED:
            text = f"{name}: approved, {_amount(s, s.approved_units)}{_period(s)}."
        elif s.action in (ServiceAction.APPROVED_IN_PART, ServiceAction.MODIFIED):
            text = (f"{name}: approved for {_amount(s, s.approved_units)}{_period(s)}, not the "
                    f"{_amount(s, s.requested_units)} asked for." if s.action is ServiceAction.APPROVED_IN_PART
                    else f"{name}: approved with changes, {_amount(s, s.approved_units)}{_period(s)}.")
        elif s.action is ServiceAction.DENIED:
            text = f"{name}: not approved."
        elif s.action is ServiceAction.INFORMATION_REQUESTED:
            text = f"{name}: not decided yet. We need more information."
        else:
            text = f"{name}: not decided yet."
        if s.next_review_date is not None:
            text += f" We will look at the stay again on {long_date(s.next_review_date)}."
        items.append(text)
    return tuple(items)


def _reason_paragraphs(s: ServiceDecision, plain: bool) -> list[str]:
    out = []
    who = "the doctor" if plain else "the reviewing physician"
    if s.reviewer_reason:
        out.append(f"{_capital(s.service)}: {who} wrote: \u201c{s.reviewer_reason.strip().rstrip('.')}.\u201d")
    specific = s.specific
    if specific is not None:
        title = s.criterion.title if s.criterion is not None and s.criterion.title else "our"
        if specific.met:
            out.append(f"The request showed {_and(specific.met)}.")
        for u in specific.unmet:
            shown = f" The request said {u.stated}." if u.stated else ""
            out.append(f"The {title} rules also need {u.description}. The request did not show this.{shown}")
        for m in specific.missing:
            out.append(f"The request did not tell us about {m}.")
        if specific.not_applicable and not specific.unmet:
            out.append(f"The {title} rules need one of these, and the request showed none: "
                       f"{'; '.join(specific.not_applicable)}.")
    if s.criterion is not None and s.criterion.condition and not plain:
        out.append(f"Criterion cited: {s.criterion.condition}.")
    return out


def _and(items: Sequence[str]) -> str:
    return items[0] if len(items) == 1 else f"{', '.join(items[:-1])} and {items[-1]}"


def _appeal_section(facts: NoticeFacts, plain: bool) -> list[Section]:
    rights, file_by = facts.rights, facts.file_by
    if rights is None or file_by is None:
        return []
    who = {"member": "you", "provider_on_behalf": "your doctor for you", "injured_worker": "you",
           "representative": "your attorney or other representative"}
    filers = list(dict.fromkeys(who[w] for w in rights.who_may_file))
    paragraphs = [f"You can ask for {rights.level}. You must ask by {long_date(file_by)}.",
                  f"Who can ask: {_or(filers)}.",
                  f"How fast: {rights.decision_time}.",
                  f"Where to send it: {rights.file_with}.",
                  rights.next_level]
    if not plain:
        paragraphs[0] = (f"The member (or a provider on the member's behalf, where the regime allows) may request "
                         f"{rights.level} within {rights.filing_window_days} days, by {long_date(file_by)}.")
    return [Section("Your right to appeal" if plain else "Appeal rights", tuple(paragraphs)),
            Section("The rules that give you this right" if plain else "Citations",
                    (f"{rights.regime}: {rights.citation}",), reference=True)]


def _or(items: Sequence[str]) -> str:
    return items[0] if len(items) == 1 else f"{', '.join(items[:-1])} or {items[-1]}"


def _criteria_section(facts: NoticeFacts, plain: bool) -> list[Section]:
    seen: dict[str, Criterion] = {}
    for s in facts.services:
        if s.adverse and s.criterion is not None and s.criterion.id:
            seen.setdefault(f"{s.criterion.id}@{s.criterion.version}", s.criterion)
    if not seen:
        return []
    items = []
    for c in seen.values():
        items.append(f"{_capital(c.title or c.id)}: criteria {c.id}, version {c.version}.")
        items.extend(f"Public source: {' '.join(source.split())}" for source in c.sources)
    return [Section("The rules we used" if plain else "Criteria", (), tuple(items), reference=True)]


def _reviewer_section(facts: NoticeFacts, plain: bool) -> list[Section]:
    deciders = {(s.decider_name, s.decider_credential) for s in facts.services if s.adverse and s.decider_name}
    if not deciders:
        return []
    items = tuple(f"{name}, {credential}" if credential else name for name, credential in sorted(deciders))
    lead = ("A doctor made this decision:" if plain else "Decided by (physician reviewer):")
    return [Section("Who decided", (lead,), items)]


def _peer_section(facts: NoticeFacts, plain: bool) -> list[Section]:
    if plain:
        text = (f"Your doctor can talk with the doctor who made this decision. Your doctor can call us to set "
                f"this up. We will offer a time within {PEER_TO_PEER_HOURS}.")
    else:
        text = (f"Peer-to-peer: you may discuss this decision with the reviewing physician before or after filing "
                f"an appeal. Call utilization management with the request number; a conversation is offered within "
                f"{PEER_TO_PEER_HOURS}.")
    return [Section("Talk with the reviewer" if plain else "Peer-to-peer conversation", (text,))]


def _information(facts: NoticeFacts, plain: bool) -> list[Section]:
    wanted = [f for s in facts.services for f in s.requested_facts]
    due = next((s.information_due for s in facts.services if s.information_due is not None), None)
    asked = _and([w.replace("_", " ") for w in wanted]) if wanted else "more medical records"
    paragraphs = [f"We have not made a decision yet. We asked {'your doctor' if plain else 'you'} for: {asked}."]
    if due is not None:
        paragraphs.append(f"We need it by {long_date(due)}.")
    paragraphs.append("If we do not get it, we will decide with what we have.")
    return [Section("What we decided", (), _decision_items(facts, plain)),
            Section("What we need", tuple(paragraphs))]


_GROUNDS = {"enrollee_request": "You asked for more time.",
            "information_needed_in_enrollee_interest": "We need more information, and waiting for it is in your "
                                                       "interest.",
            "beyond_plan_control": "Something outside our control keeps us from deciding now.",
            "information_needed": "We need more information to decide."}


def _extension(facts: NoticeFacts, plain: bool) -> list[Section]:
    new = f" We will decide by {_when(facts.new_due)}." if facts.new_due is not None else ""
    paragraphs = [f"We need up to 14 more days to decide.{new}", _GROUNDS.get(facts.extension_ground,
                                                                           "We need more time.")]
    if facts.line_of_business in ("medicare_advantage", "medicaid"):
        paragraphs.append("If you do not agree with this delay, you can file a fast complaint. This is called "
                          "an expedited grievance. We will answer it within 24 hours.")
    return [Section("What is happening", tuple(paragraphs)),
            Section("The rules", ("42 CFR 422.568(b)(1), 422.572(b); 438.210(d)(1)(ii); "
                                  "29 CFR 2560.503-1(f)(2)(iii)",), reference=True)]


def _deemed(facts: NoticeFacts, plain: bool) -> list[Section]:
    missed = f" by {_when(facts.missed_due)}" if facts.missed_due is not None else ""
    you = "You" if plain else "The member"
    return [Section("What happened", (f"We did not make a decision{missed}. That was our deadline.",
                                      f"The law says this counts as a denial. {you} can appeal it now.")),
            Section("The rule", ("42 CFR 438.404(c)(5)",), reference=True), *_appeal_section(facts, plain)]


def _appeal_decided(facts: NoticeFacts, plain: bool) -> list[Section]:
    sections = [Section("What we decided", ("A different doctor looked at the appeal. This doctor did not make "
                                            "the first decision.",), _decision_items(facts, plain))]
    appeal = facts.appeal
    if appeal is None or appeal.outcome == "overturned":
        return sections
    sections += _adverse_sections(facts, plain)
    if appeal.forwarded_to:
        sections.append(Section("What happens next", (
            f"We sent your case to {appeal.forwarded_to}. You do not need to do anything. "
            "They will write to you with their decision.",)))
    elif facts.rights is not None:
        sections.append(Section("What happens next", (facts.rights.next_level,)))
    return sections + [s for s in _appeal_section(facts, plain) if s.reference]


def _decided(facts: NoticeFacts, plain: bool) -> list[Section]:
    sections = [Section("What we decided", (), _decision_items(facts, plain))]
    if facts.kind in ADVERSE_KINDS:
        sections += _adverse_sections(facts, plain) + _appeal_section(facts, plain)
    return sections


_BODIES = {NoticeKind.REQUEST_FOR_INFORMATION: _information, NoticeKind.EXTENSION: _extension,
           NoticeKind.DEEMED_DENIAL: _deemed, NoticeKind.APPEAL_DECISION: _appeal_decided}


def _body(facts: NoticeFacts, plain: bool) -> list[Section]:
    return _BODIES.get(facts.kind, _decided)(facts, plain)


def _adverse_sections(facts: NoticeFacts, plain: bool) -> list[Section]:
    reasons = [p for s in facts.services if s.adverse for p in _reason_paragraphs(s, plain)]
    out = [Section("Why", tuple(reasons))] if reasons else []
    return out + _reviewer_section(facts, plain) + _criteria_section(facts, plain) + _peer_section(facts, plain)


def compose(facts: NoticeFacts, recipient_role: str, recipient: Party, notice_id: str,
            issued_at: dt.datetime) -> Notice:
    """The notice of ``facts`` for one reader: plain language for the member (or injured worker, and
    the copies to the adjuster and attorney), the clinical particulars for the requesting provider."""
    plain = recipient_role in PLAIN_READERS
    sections = _body(facts, plain)
    if recipient_role in (ADJUSTER, ATTORNEY):
        sections.insert(0, Section("A copy for you", (
            f"This is a copy of the letter we sent to {facts.member.name}, the injured worker.",)))
    help_lines = ("Questions? Call us. We can give you this letter in other languages or in large print, "
                  "at no cost." if plain else "Questions about this determination: call utilization management "
                                              "and quote the request number.",)
    sections.append(Section("Need help?", help_lines))
    who = "injured worker" if facts.workers_comp else "member"
    about = f"About: {facts.member.name}, {who} ID {facts.member_id}"
    if facts.claim_number:
        about += f", claim {facts.claim_number}"
    return Notice(notice_id=notice_id, request_id=facts.request_id, determination_id=facts.determination_id,
                  member_id=facts.member_id, kind=facts.kind, recipient_role=recipient_role, recipient=recipient,
                  issued_at=issued_at, line_numbers=tuple(s.line_number for s in facts.services),
                  subject=subject_of(facts), sections=tuple(sections), about=about)


def recipients(facts: NoticeFacts, adjuster: Party | None = None, attorney: Party | None = None,
               ) -> list[tuple[str, Party]]:
    """Who receives the notice: the member (the injured worker in workers' comp), the requesting
    provider, and in workers' comp the claims adjuster and, where one is on record, the attorney."""
    out = [(INJURED_WORKER if facts.workers_comp else MEMBER, facts.member), (PROVIDER, facts.requesting_provider)]
    if facts.workers_comp:
        if adjuster is not None:
            out.append((ADJUSTER, adjuster))
        if attorney is not None:
            out.append((ATTORNEY, attorney))
    return out


# -- the letter as plain text ----------------------------------------------------------------------

WIDTH = 78


@functools.lru_cache(maxsize=4096)
def _wrapped(text: str, first: str, rest: str) -> tuple[str, ...]:
    """``text`` wrapped to :data:`WIDTH`; kept, as most of a letter's paragraphs (rights, how to appeal,
    whom to call) are the same in every letter of a kind and textwrap is slow."""
    return tuple(textwrap.wrap(text, WIDTH, initial_indent=first, subsequent_indent=rest))


def render_text(notice: Notice) -> str:
    """The letter as plain text (what the PDF shows, without the layout)."""
    out = [SENDER, long_date(notice.issued_at.date()), "", notice.recipient.name, *notice.recipient.address_lines, ""]
    if notice.about:
        out.append(notice.about)
    out.append(f"Request: {notice.request_id}")
    out += ["", notice.subject.upper(), ""]
    for section in notice.sections:
        out.append(section.heading)
        out.append("-" * len(section.heading))
        for paragraph in section.paragraphs:
            out += _wrapped(paragraph, "", "") or [""]
            out.append("")
        for item in section.items:
            out += _wrapped(item, "  * ", "    ")
        if section.items:
            out.append("")
    out += ["Sincerely,", SENDER, ""]
    return "\n".join(out)
