"""Notices of each kind, composed from realistic facts: the samples the notice tests read (and that
``make run`` writes to disk through the running platform)."""

from __future__ import annotations

import datetime as dt

from services.review.adapters.appeal_rights_loader import load_appeal_rights
from services.review.domain.notices import (
    AppealDecision,
    Criterion,
    Notice,
    NoticeFacts,
    NoticeKind,
    Party,
    ServiceAction,
    ServiceDecision,
    Shortfall,
    SpecificReason,
    compose,
)

RIGHTS = load_appeal_rights()
ISSUED = dt.datetime(2027, 3, 4, 15, 30, tzinfo=dt.UTC)
MEMBER = Party("Maria Lopez", ("1200 Oak Street, Apt 4", "Austin, TX 78701"))
PROVIDER = Party("Bay Spine Clinic", ("88 Mission Road", "Austin, TX 78702"), npi="1234567893")
LUMBAR = Criterion(
    id="imaging-mri-lumbar-spine", version="2026.1", title="lumbar spine MRI",
    sources=("American College of Radiology, ACR Appropriateness Criteria: Low Back Pain (2021 revision).",
             "CMS National Coverage Determination (NCD) 220.2, Magnetic Resonance Imaging."),
    condition="at least 6 weeks of conservative therapy")
SPECIFIC = SpecificReason(met=("symptoms for at least 6 weeks",),
                          unmet=(Shortfall("at least 6 weeks of conservative therapy", "2 weeks"),),
                          summary="the request shows symptoms for at least 6 weeks, but not at least 6 weeks of "
                                  "conservative therapy (conservative_therapy_weeks=2 weeks stated)")
DOCTOR = ("Dr. Anil Patel", "MD, board-certified physical medicine and rehabilitation, licensed in CA, TX")


def mri(action: ServiceAction, **changes: object) -> ServiceDecision:
    adverse = action in (ServiceAction.DENIED, ServiceAction.APPROVED_IN_PART, ServiceAction.MODIFIED)
    values: dict[str, object] = {
        "line_number": 1, "procedure_code": "72148", "service": "lumbar spine MRI", "action": action,
        "requested_units": 1, "approved_units": 0 if action is ServiceAction.DENIED else 1,
        "start": dt.date(2027, 3, 10), "end": dt.date(2027, 6, 7),
        "reviewer_reason": "Six weeks of physical therapy should be tried first" if adverse else "",
        "specific": SPECIFIC if adverse else None, "criterion": LUMBAR if adverse else None,
        "decider_name": DOCTOR[0] if adverse else "", "decider_credential": DOCTOR[1] if adverse else "",
        "decider_role": "physician" if adverse else "software", **changes}
    return ServiceDecision(**values)  # type: ignore[arg-type]


def therapy(action: ServiceAction) -> ServiceDecision:
    return ServiceDecision(line_number=1, procedure_code="97110", service="physical therapy visits", action=action,
                           requested_units=12, approved_units=6, unit="visits", start=dt.date(2027, 3, 10),
                           end=dt.date(2027, 4, 30), reviewer_reason="Six visits first, then a progress note",
                           specific=SpecificReason(unmet=(Shortfall("a documented functional goal", "none"),)),
                           criterion=Criterion("pt-ot-visits", "2026.1", "physical and occupational therapy visits",
                                               ("CMS Medicare Benefit Policy Manual, chapter 15, section 220.",)),
                           decider_name=DOCTOR[0], decider_credential=DOCTOR[1], decider_role="physician")


def facts(kind: NoticeKind, services: tuple[ServiceDecision, ...], lob: str = "medicare_advantage",
          state: str = "TX", **extra: object) -> NoticeFacts:
    rights = RIGHTS.for_line(lob, state) if kind in (NoticeKind.DENIAL, NoticeKind.PARTIAL_APPROVAL,
                                                    NoticeKind.MODIFICATION, NoticeKind.DEEMED_DENIAL,
                                                    NoticeKind.APPEAL_DECISION) else None
    return NoticeFacts(kind=kind, request_id="9b2c4a1e-5f3d-4e8a-9c71-2d6f0a3b8e15", determination_id="d-1",
                       member_id="MA100001", member=MEMBER, line_of_business=lob, member_state=state,
                       requesting_provider=PROVIDER, issued_on=ISSUED.date(), services=services, rights=rights,
                       **extra)  # type: ignore[arg-type]


def samples() -> dict[str, NoticeFacts]:
    """One set of facts per notice kind (and the appeal decisions' outcomes), by name."""
    pended = mri(ServiceAction.PENDED)
    return {
        "approval": facts(NoticeKind.APPROVAL, (mri(ServiceAction.APPROVED),)),
        "partial_approval": facts(NoticeKind.PARTIAL_APPROVAL, (therapy(ServiceAction.APPROVED_IN_PART),),
                                  lob="medicaid"),
        "modification": facts(NoticeKind.MODIFICATION, (therapy(ServiceAction.MODIFIED),), lob="commercial",
                              state="NY"),
        "denial": facts(NoticeKind.DENIAL, (mri(ServiceAction.DENIED),)),
        "request_for_information": facts(NoticeKind.REQUEST_FOR_INFORMATION, (mri(
            ServiceAction.INFORMATION_REQUESTED, requested_facts=("conservative_therapy_weeks",),
            information_due=dt.date(2027, 3, 9)),)),
        "extension": facts(NoticeKind.EXTENSION, (pended,), new_due=ISSUED + dt.timedelta(days=17),
                           extension_ground="enrollee_request"),
        "deemed_denial": facts(NoticeKind.DEEMED_DENIAL, (pended,), lob="medicaid",
                               missed_due=ISSUED - dt.timedelta(hours=2)),
        "appeal_overturned": facts(NoticeKind.APPEAL_DECISION, (mri(ServiceAction.APPROVED),),
                                   appeal=AppealDecision("ap-1", "overturned")),
        "appeal_upheld_forwarded": facts(NoticeKind.APPEAL_DECISION, (mri(ServiceAction.DENIED),),
                                         appeal=AppealDecision("ap-2", "upheld", RIGHTS.for_line(
                                             "medicare_advantage", "TX").forwards_upheld_to)),
        "workers_comp_denial": facts(NoticeKind.DENIAL, (mri(ServiceAction.DENIED),), lob="workers_comp",
                                     state="CA", claim_number="WC-2027-0042"),
    }


def member_notice(name: str) -> Notice:
    f = samples()[name]
    role = "injured_worker" if f.workers_comp else "member"
    return compose(f, role, f.member, f"notice-{name}", ISSUED)


def provider_notice(name: str) -> Notice:
    f = samples()[name]
    return compose(f, "requesting_provider", f.requesting_provider, f"notice-{name}-provider", ISSUED)
