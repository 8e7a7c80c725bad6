"""Notices (services/review/domain/notices.py, adapters/notice_pdf.py): a notice of each kind
rendered to PDF, its text read back out of the PDF (pypdf) and found to hold the decision, the
specific reason, the criterion and the regime's appeal rights; member letters measured at or below
an 8th-grade reading level; who receives them."""

from __future__ import annotations

import io
import re

import pytest
from pypdf import PdfReader

from services.review.adapters.notice_pdf import render_pdf
from services.review.domain.notices import (
    ADJUSTER,
    ATTORNEY,
    INJURED_WORKER,
    MEMBER,
    PROVIDER,
    Notice,
    NoticeKind,
    Party,
    ServiceAction,
    recipients,
)
from services.review.service_layer.notices import kind_of
from tests.readability import grade
from tests.unit.review.notice_samples import ISSUED, member_notice, mri, provider_notice, samples, therapy

ADVERSE = ("partial_approval", "modification", "denial", "deemed_denial", "appeal_upheld_forwarded",
           "workers_comp_denial")


def pdf_text(notice: Notice) -> str:
    """The PDF's text as a reader's tool extracts it, whitespace folded."""
    pdf = render_pdf(notice)
    assert pdf.startswith(b"%PDF-")
    reader = PdfReader(io.BytesIO(pdf))
    return " ".join(" ".join((page.extract_text() or "") for page in reader.pages).split())


def folded(text: str) -> str:
    return " ".join(text.split())


@pytest.mark.parametrize("name", sorted(samples()))
def test_each_kind_renders_to_a_pdf_whose_text_holds_the_letter(name: str) -> None:
    for notice in (member_notice(name), provider_notice(name)):
        text = pdf_text(notice)
        assert folded(notice.subject) in text
        assert notice.recipient.name in text
        assert notice.request_id in text
        for section in notice.sections:
            assert folded(section.heading) in text
            for paragraph in (*section.paragraphs, *section.items):
                # Every word of the letter is in the PDF, in order (line breaks aside).
                assert folded(paragraph) in text, paragraph


def test_a_denial_states_the_decision_the_specific_reason_the_criterion_and_the_appeal_rights() -> None:
    text = pdf_text(member_notice("denial"))
    assert "Lumbar spine MRI: not approved." in text
    # The specific reason: the nearest path, never an alternative that merely did not apply.
    assert "The request showed symptoms for at least 6 weeks." in text
    assert "also need at least 6 weeks of conservative therapy. The request did not show this. " \
           "The request said 2 weeks." in text
    assert "cauda equina" not in text
    assert "criteria imaging-mri-lumbar-spine, version 2026.1" in text
    assert "ACR Appropriateness Criteria: Low Back Pain" in text
    assert "Dr. Anil Patel, MD, board-certified physical medicine and rehabilitation" in text
    assert "Your doctor can talk with the doctor who made this decision" in text
    # Medicare Advantage: a reconsideration within 65 days of the notice, then the IRE.
    assert "You can ask for a reconsideration by the plan. You must ask by May 8, 2027." in text
    assert "Independent Review Entity (IRE)" in text
    assert "42 CFR 422.582(b)" in text


@pytest.mark.parametrize(("name", "level", "file_by", "next_level", "citation"), [
    ("partial_approval", "an appeal to the plan", "May 3, 2027", "State fair hearing", "438.402(c)(2)(ii)"),
    ("modification", "an internal appeal to the plan", "August 31, 2027", "external review", "2560.503-1(h)(3)(i)"),
    ("deemed_denial", "an appeal to the plan", "May 3, 2027", "State fair hearing", "438.404(c)(5)"),
    ("workers_comp_denial", "Independent Medical Review (IMR)", "April 3, 2027", "IMR decision binds",
     "Labor Code 4610.5(h)(1)"),
])
def test_each_regime_states_its_own_appeal_rights(name: str, level: str, file_by: str, next_level: str,
                                                   citation: str) -> None:
    text = pdf_text(member_notice(name))
    assert f"You can ask for {level}. You must ask by {file_by}." in text
    assert next_level in text
    assert citation in text


def test_the_provider_letter_names_codes_and_the_criterion_cited() -> None:
    text = pdf_text(provider_notice("denial"))
    assert "Lumbar spine MRI (72148, line 1): not approved." in text
    assert "Criterion cited: at least 6 weeks of conservative therapy." in text
    assert "Peer-to-peer" in text


def test_the_other_kinds_say_what_they_are_about() -> None:
    assert "Lumbar spine MRI: approved, 1 unit from March 10, 2027 to June 7, 2027." in pdf_text(
        member_notice("approval"))
    assert "approved for 6 visits from March 10, 2027 to April 30, 2027, not the 12 visits asked for" in pdf_text(
        member_notice("partial_approval"))
    rfi = pdf_text(member_notice("request_for_information"))
    assert "We asked your doctor for: conservative therapy weeks. We need it by March 9, 2027." in rfi
    extension = pdf_text(member_notice("extension"))
    assert "We need up to 14 more days to decide. We will decide by March 21, 2027" in extension
    assert "expedited grievance" in extension
    deemed = pdf_text(member_notice("deemed_denial"))
    assert "The law says this counts as a denial. You can appeal it now." in deemed
    overturned = pdf_text(member_notice("appeal_overturned"))
    assert "We changed our decision after your appeal" in overturned
    assert "This doctor did not make the first decision." in overturned
    forwarded = pdf_text(member_notice("appeal_upheld_forwarded"))
    assert "We did not change our decision after your appeal" in forwarded
    assert "We sent your case to the Independent Review Entity (IRE) contracted by CMS. You do not need to do " \
           "anything." in forwarded


@pytest.mark.parametrize("name", sorted(samples()))
def test_member_letters_read_at_or_below_the_eighth_grade(name: str) -> None:
    notice = member_notice(name)
    assert notice.plain
    assert grade(notice.prose()) <= 8.0, notice.prose()


def test_the_reading_measure_leaves_out_only_the_reference_sections() -> None:
    notice = member_notice("denial")
    prose = notice.prose()
    assert "Six weeks of physical therapy should be tried first" in prose
    assert "42 CFR" not in prose
    assert all(s.heading in ("The rules we used", "The rules that give you this right")
               for s in notice.sections if s.reference)


def test_workers_comp_notices_go_to_the_injured_worker_the_provider_the_adjuster_and_the_attorney() -> None:
    facts = samples()["workers_comp_denial"]
    adjuster, attorney = Party("Lena Chen, claims adjuster"), Party("Ruth Alvarez, Esq.")
    assert [role for role, _ in recipients(facts, adjuster, attorney)] == [INJURED_WORKER, PROVIDER, ADJUSTER,
                                                                          ATTORNEY]
    assert [role for role, _ in recipients(facts, adjuster, None)] == [INJURED_WORKER, PROVIDER, ADJUSTER]
    assert [role for role, _ in recipients(samples()["denial"], adjuster, attorney)] == [MEMBER, PROVIDER]
    from services.review.domain.notices import compose

    copy = compose(facts, ADJUSTER, adjuster, "n-1", ISSUED)
    assert "This is a copy of the letter we sent to Maria Lopez, the injured worker." in pdf_text(copy)
    assert re.search(r"injured worker ID MA100001, claim WC-2027-0042", pdf_text(copy))


def test_the_most_adverse_line_sets_the_kind() -> None:
    assert kind_of([mri(ServiceAction.APPROVED), mri(ServiceAction.DENIED)]) is NoticeKind.DENIAL
    assert kind_of([mri(ServiceAction.APPROVED), therapy(ServiceAction.APPROVED_IN_PART)]) is (
        NoticeKind.PARTIAL_APPROVAL)
    assert kind_of([therapy(ServiceAction.MODIFIED), therapy(ServiceAction.APPROVED_IN_PART)]) is (
        NoticeKind.MODIFICATION)
    assert kind_of([mri(ServiceAction.PENDED)]) is None
