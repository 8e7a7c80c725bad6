"""Notices as PDF letters (ReportLab), from the same sections as their plain text.

A calm, legible letter: US Letter, one-inch side margins, the sender's name over a thin rule, the
date and the recipient's address where a window envelope shows them, the subject in bold, short
sections with plain headings, the decisions as a bulleted list, and the references (criteria,
citations) set smaller in grey at the end of their section; a footer with the request and the page.
Only the PDF standard fonts are used (Helvetica), so nothing has to be installed or embedded.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from xml.sax.saxutils import escape

from reportlab.lib import colors
from reportlab.lib.enums import TA_LEFT
from reportlab.lib.pagesizes import LETTER
from reportlab.lib.styles import ParagraphStyle
from reportlab.lib.units import inch
from reportlab.pdfgen.canvas import Canvas
from reportlab.platypus import (
    HRFlowable,
    KeepTogether,
    ListFlowable,
    ListItem,
    Paragraph,
    SimpleDocTemplate,
    Spacer,
)
from reportlab.platypus.flowables import Flowable

from services.review.domain.notices import SENDER, Notice, Section, long_date
from services.review.service_layer.ports import NoticeRenderer

INK = colors.HexColor("#1f2328")
MUTED = colors.HexColor("#57606a")
RULE = colors.HexColor("#8c959f")
ACCENT = colors.HexColor("#0b4f6c")

BODY = ParagraphStyle("body", fontName="Helvetica", fontSize=10.5, leading=15, textColor=INK, alignment=TA_LEFT,
                      spaceAfter=6)
SENDER_STYLE = ParagraphStyle("sender", parent=BODY, fontName="Helvetica-Bold", fontSize=13, leading=16,
                              textColor=ACCENT, spaceAfter=2)
SMALL = ParagraphStyle("small", parent=BODY, fontSize=8.5, leading=11.5, textColor=MUTED, spaceAfter=3)
ADDRESS = ParagraphStyle("address", parent=BODY, spaceAfter=0)
SUBJECT = ParagraphStyle("subject", parent=BODY, fontName="Helvetica-Bold", fontSize=14, leading=18,
                         spaceBefore=10, spaceAfter=10)
HEADING = ParagraphStyle("heading", parent=BODY, fontName="Helvetica-Bold", fontSize=11, leading=15,
                         textColor=ACCENT, spaceBefore=8, spaceAfter=3)
ITEM = ParagraphStyle("item", parent=BODY, spaceAfter=3)


def _p(text: str, style: ParagraphStyle) -> Paragraph:
    return Paragraph(escape(text), style)


def _section(section: Section) -> list[Flowable]:
    text_style = SMALL if section.reference else BODY
    heading = ParagraphStyle("ref-heading", parent=HEADING, fontSize=9, textColor=MUTED) if section.reference \
        else HEADING
    out: list[Flowable] = [_p(section.heading, heading)]
    out += [_p(paragraph, text_style) for paragraph in section.paragraphs]
    if section.items:
        out.append(ListFlowable([ListItem(_p(item, SMALL if section.reference else ITEM), leftIndent=14)
                                 for item in section.items], bulletType="bullet", start="\u2022", leftIndent=14,
                                bulletFontSize=8 if section.reference else 10, bulletColor=MUTED))
    # A heading never ends a page alone.
    return [KeepTogether(out[:2]), *out[2:]]


def _footer(notice: Notice) -> Callable[[Canvas, SimpleDocTemplate], None]:
    def draw(canvas: Canvas, doc: SimpleDocTemplate) -> None:
        canvas.saveState()
        canvas.setFont("Helvetica", 8)
        canvas.setFillColor(MUTED)
        canvas.drawString(doc.leftMargin, 0.55 * inch,
                          f"Request {notice.request_id}  \u00b7  notice {notice.notice_id}")
        canvas.drawRightString(LETTER[0] - doc.rightMargin, 0.55 * inch, f"Page {doc.page}")
        canvas.restoreState()

    return draw


def render_pdf(notice: Notice) -> bytes:
    """The notice as a PDF letter."""
    buffer = io.BytesIO()
    doc = SimpleDocTemplate(buffer, pagesize=LETTER, leftMargin=inch, rightMargin=inch, topMargin=0.75 * inch,
                            bottomMargin=0.9 * inch, title=notice.subject, author=SENDER,
                            subject=f"{notice.kind.value.replace('_', ' ')} notice for request {notice.request_id}")
    story: list[Flowable] = [
        _p(SENDER, SENDER_STYLE),
        HRFlowable(width="100%", thickness=0.6, color=RULE, spaceBefore=2, spaceAfter=12),
        _p(long_date(notice.issued_at.date()), BODY),
        Spacer(1, 10),
        *[_p(line, ADDRESS) for line in (notice.recipient.name, *notice.recipient.address_lines)],
        Spacer(1, 14),
    ]
    if notice.about:
        story.append(_p(notice.about, SMALL))
    story.append(_p(f"Request {notice.request_id}", SMALL))
    story.append(_p(notice.subject, SUBJECT))
    for section in notice.sections:
        story += _section(section)
    story += [Spacer(1, 14), _p("Sincerely,", BODY), _p(SENDER, BODY)]
    footer = _footer(notice)
    doc.build(story, onFirstPage=footer, onLaterPages=footer)
    return buffer.getvalue()


class ReportLabNoticeRenderer(NoticeRenderer):
    def pdf(self, notice: Notice) -> bytes:
        return render_pdf(notice)
