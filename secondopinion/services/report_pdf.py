"""Rendering of the final second-opinion report as an A4 PDF with ReportLab.

Headings, labels and dates are in the language of `ReportPdfData.language` (the patient's); the
radiologist's texts are printed as written.
"""

from __future__ import annotations

import io
import re
import threading
import time
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from reportlab import rl_config
from reportlab.lib import colors
from reportlab.lib.enums import TA_RIGHT
from reportlab.lib.pagesizes import A4
from reportlab.lib.styles import ParagraphStyle
from reportlab.lib.units import mm
from reportlab.lib.utils import ImageReader, TimeStamp
from reportlab.pdfgen.canvas import Canvas
from reportlab.platypus import (Flowable, HRFlowable, Image, KeepTogether, Paragraph, SimpleDocTemplate, Spacer,
                                Table, TableStyle)

from .. import i18n
from ..i18n import _
from .report_pdf_fonts import FONT, FONT_BOLD, draw_text, has_cjk, markup, normalize, register_fonts

ASSETS_DIR = Path(__file__).resolve().parents[2] / 'assets'
LOGO_PATH = ASSETS_DIR / 'logo.png'

TEAL = colors.HexColor('#0d9488')
GREY = colors.HexColor('#555555')
LIGHT_GREY = colors.HexColor('#d0d5d9')

PAGE_MARGIN = 18 * mm
FOOTER_HEIGHT = 12 * mm
NO_BREAK_SPACE = '\u00a0'
KEY_IMAGE_GAP = 6 * mm

# ReportLab wraps every stream in ASCII85 unless configured otherwise, and without its optional C accelerator it
# encodes in Python: a 44 KB key image took about 30 ms per pass (bench/report.py). Binary streams are
# valid PDF and 20 % smaller. This switch is global to ReportLab, which only this module uses.
rl_config.useA85 = 0

# NOTE: ReportLab does not document its rendering as thread-safe (fonts keep per-document state),
# so one PDF is rendered at a time. Reports are finalized rarely, so the lock costs little.
_render_lock = threading.Lock()


@dataclass(frozen=True)
class PdfAddendum:
    """A signed addition to a finalized report, printed after the original report."""

    number: int
    text: str
    doctor_name: str
    signed_at: datetime


@dataclass(frozen=True)
class PdfKeyImage:
    """A slice printed with the report: JPEG or PNG bytes, where it comes from, and the doctor's caption."""

    image: bytes
    label: str
    caption: str = ''


@dataclass(frozen=True)
class ReportPdfData:
    """Everything printed on the report. The doctor's texts are plain text, and line breaks are kept."""

    practice_name: str
    report_id: str
    examination_id: str
    patient_name: str
    patient_birth_date: date | None  # None in a de-identified copy, which prints patient_age instead
    modality: str
    body_part: str
    clinical_question: str
    study_summary: str
    doctor_name: str
    doctor_license: str
    doctor_specialty: str
    findings: str
    impression: str
    recommendations: str
    finalized_at: datetime
    original_report_note: str = ''
    technique: str = ''
    # The radiologist's verdict on the patient's first report, such as "Partly agrees: the nodule is smaller".
    comparison: str = ''
    # Shown in the title and the header when above 1.
    version: int = 1
    addenda: tuple[PdfAddendum, ...] = ()
    # Language code of the labels and dates (i18n.LANGUAGES).
    language: str = 'en'
    key_images: tuple[PdfKeyImage, ...] = ()
    patient_age: str = ''


def render_report_pdf(data: ReportPdfData) -> bytes:
    """Render the report and return the PDF bytes. Identical data gives identical bytes.

    Raises ValueError when `finalized_at` or an addendum's `signed_at` has no time zone, because the
    signatures show the time in UTC.
    """
    if data.finalized_at.tzinfo is None:
        raise ValueError('finalized_at must be timezone-aware, for example datetime.now(UTC)')
    for addendum in data.addenda:
        if addendum.signed_at.tzinfo is None:
            raise ValueError(f'signed_at of addendum {addendum.number} must be timezone-aware, '
                             'for example datetime.now(UTC)')
    register_fonts()
    with _render_lock, i18n.use_language(data.language):
        # The footer shows "Page N of M", and M is known only after a first pass counts the pages.
        _first_pass, page_count = _build(data, total_pages=None)
        pdf, second_count = _build(data, total_pages=page_count)
    if second_count != page_count:
        raise RuntimeError(f'report PDF for examination {data.examination_id} changed page count between passes')
    return pdf


# --- document assembly -------------------------------------------------------------------------

def _build(data: ReportPdfData, *, total_pages: int | None) -> tuple[bytes, int]:
    """Lay out the whole document once and return the PDF bytes and the number of pages."""
    buffer = io.BytesIO()
    doc = SimpleDocTemplate(
        buffer, pagesize=A4, invariant=1, initialFontName=FONT,
        leftMargin=PAGE_MARGIN, rightMargin=PAGE_MARGIN, topMargin=PAGE_MARGIN,
        bottomMargin=PAGE_MARGIN + FOOTER_HEIGHT,
        title=_('Second Opinion Radiology Report {report_id}', report_id=data.report_id), author=data.practice_name,
        subject=_('Examination {examination_id}', examination_id=data.examination_id), creator=data.practice_name,
        lang=data.language,
    )
    pages_seen = 0

    def draw_footer(canvas: Canvas, document: SimpleDocTemplate) -> None:
        nonlocal pages_seen
        pages_seen = document.page
        _draw_footer(canvas, data, page=document.page, total_pages=total_pages)

    def draw_first_page(canvas: Canvas, document: SimpleDocTemplate) -> None:
        _stamp_signing_time(canvas, data.finalized_at)
        draw_footer(canvas, document)

    doc.build(_story(data), onFirstPage=draw_first_page, onLaterPages=draw_footer)
    return buffer.getvalue(), pages_seen


def _stamp_signing_time(canvas: Canvas, finalized_at: datetime) -> None:
    """Set the PDF's CreationDate and ModDate to the signing time instead of invariant mode's 2000-01-01.

    Invariant mode keeps the bytes reproducible; the time stamp replaced here is the only value it
    fixes to a made-up date. ReportLab 4 reads `_timeStamp` of the canvas's document when it writes
    the info dictionary, after the pages are drawn.
    """
    seconds = finalized_at.astimezone(UTC).timestamp()
    stamp = TimeStamp(invariant=1)
    stamp.t = seconds
    stamp.lt = time.gmtime(seconds)
    stamp.YMDhms = tuple(stamp.lt)[:6]
    canvas._doc._timeStamp = stamp  # noqa: SLF001 (ReportLab has no public setter for the creation date)


def _draw_footer(canvas: Canvas, data: ReportPdfData, *, page: int, total_pages: int | None) -> None:
    width = A4[0]
    line_y = PAGE_MARGIN + 2 * mm
    text_y = PAGE_MARGIN - 3 * mm
    canvas.saveState()
    canvas.setStrokeColor(LIGHT_GREY)
    canvas.setLineWidth(0.5)
    canvas.line(PAGE_MARGIN, line_y, width - PAGE_MARGIN, line_y)
    canvas.setFillColor(GREY)
    draw_text(canvas, PAGE_MARGIN, text_y,
              f'{data.practice_name} · ' + _('Examination {examination_id}', examination_id=data.examination_id),
              font=FONT, size=8)
    canvas.setFont(FONT, 8)
    page_label = _('Page {page} of {total}', page=page, total=total_pages) if total_pages \
        else _('Page {page}', page=page)
    canvas.drawRightString(width - PAGE_MARGIN, text_y, page_label)
    canvas.restoreState()


def _story(data: ReportPdfData) -> list[Flowable]:
    styles = _styles()
    title = _('Second Opinion Radiology Report')
    if data.version > 1:
        title += ' · ' + _('Version {version}', version=data.version)
    story: list[Flowable] = [
        _header(data, styles),
        Spacer(1, 6 * mm),
        Paragraph(title, styles['title']),
        Spacer(1, 4 * mm),
        _details_table(data, styles),
        Spacer(1, 4 * mm),
    ]
    sections = [(_('Clinical question'), data.clinical_question)]
    if data.original_report_note.strip():
        sections.append((_('Original report'), data.original_report_note))
    if data.technique.strip():
        sections.append((_('Technique'), data.technique))
    sections += [
        (_('Findings'), data.findings),
        (_('Impression'), data.impression),
    ]
    if data.comparison.strip():
        sections.append((_('Comparison with the first report'), data.comparison))
    sections.append((_('Recommendations'), data.recommendations))
    for heading, text in sections:
        story.extend(_section(markup(heading), text, styles))
    if data.key_images:
        story.extend(_key_images(data.key_images, styles))
    # The signature moves to the next page together with the last paragraph, so it does not start a page alone.
    story.append(KeepTogether([story.pop(), *_signature(data, styles)]))
    # Addenda follow the signed original unchanged, so a reader sees which doctor added each text and when.
    for addendum in sorted(data.addenda, key=lambda item: item.number):
        signed_at = _utc_text(addendum.signed_at).replace(' ', NO_BREAK_SPACE)
        heading = _('Addendum {number} (signed {time} by {name})', number=addendum.number, time=signed_at,
                    name=markup(addendum.doctor_name))
        story.extend(_section(heading, addendum.text, styles))
    return story


def _styles() -> dict[str, ParagraphStyle]:
    body = ParagraphStyle('body', fontName=FONT, fontSize=10, leading=14, spaceAfter=5)
    return {
        'body': body,
        'practice': ParagraphStyle('practice', parent=body, fontName=FONT_BOLD, fontSize=15, leading=19,
                                   textColor=TEAL),
        'title': ParagraphStyle('title', parent=body, fontName=FONT_BOLD, fontSize=17, leading=22),
        'heading': ParagraphStyle('heading', parent=body, fontName=FONT_BOLD, fontSize=11.5, leading=15,
                                  textColor=TEAL, spaceBefore=8, spaceAfter=4),
        'label': ParagraphStyle('label', parent=body, fontName=FONT_BOLD, textColor=GREY, spaceAfter=0),
        'value': ParagraphStyle('value', parent=body, spaceAfter=0),
        'small': ParagraphStyle('small', parent=body, fontSize=8.5, leading=11, textColor=GREY,
                                alignment=TA_RIGHT),
        'figure_label': ParagraphStyle('figure_label', parent=body, fontSize=8.5, leading=11, textColor=GREY,
                                       spaceBefore=2, spaceAfter=1),
        'signature': ParagraphStyle('signature', parent=body, spaceAfter=0),
        'signed': ParagraphStyle('signed', parent=body, fontSize=8.5, leading=11, textColor=GREY, spaceBefore=3),
    }


def _header(data: ReportPdfData, styles: dict[str, ParagraphStyle]) -> Flowable:
    logo = Image(str(LOGO_PATH), width=16 * mm, height=16 * mm)
    name = Paragraph(markup(data.practice_name), styles['practice'])
    reference = _('Report ID {report_id}', report_id=markup(data.report_id))
    if data.version > 1:
        reference += '<br/>' + _('Version {version}', version=data.version)
    table = Table([[logo, name, Paragraph(reference, styles['small'])]], colWidths=[20 * mm, None, 45 * mm])
    table.setStyle(TableStyle([
        ('VALIGN', (0, 0), (-1, -1), 'MIDDLE'),
        ('LEFTPADDING', (0, 0), (0, 0), 0),
        ('RIGHTPADDING', (-1, 0), (-1, 0), 0),
        ('LINEBELOW', (0, 0), (-1, 0), 1.2, TEAL),
        ('BOTTOMPADDING', (0, 0), (-1, 0), 3 * mm),
    ]))
    return table


def _details_table(data: ReportPdfData, styles: dict[str, ParagraphStyle]) -> Flowable:
    examination = ' · '.join(part for part in (data.modality.strip(), data.body_part.strip()) if part)
    rows = [
        (_('Patient'), data.patient_name),
        (_('Date of birth'), _day_text(data.patient_birth_date)) if data.patient_birth_date is not None
        else (_('Age'), data.patient_age or '—'),
        (_('Examination ID'), data.examination_id),
        (_('Modality, body part'), examination or '—'),
        (_('Images'), data.study_summary or '—'),
        (_('Report finalized'), _utc_text(data.finalized_at)),
    ]
    cells = [[Paragraph(markup(label), styles['label']), _text_paragraph(value, styles['value'])]
             for label, value in rows]
    table = Table(cells, colWidths=[44 * mm, None])
    table.setStyle(TableStyle([
        ('VALIGN', (0, 0), (-1, -1), 'TOP'),
        ('BACKGROUND', (0, 0), (-1, -1), colors.HexColor('#f3f7f7')),
        ('LINEBELOW', (0, 0), (-1, -2), 0.4, LIGHT_GREY),
        ('TOPPADDING', (0, 0), (-1, -1), 3),
        ('BOTTOMPADDING', (0, 0), (-1, -1), 4),
        ('LEFTPADDING', (0, 0), (-1, -1), 6),
    ]))
    return table


def _section(heading_markup: str, text: str, styles: dict[str, ParagraphStyle]) -> list[Flowable]:
    """Return a heading and one paragraph per block of text separated by blank lines."""
    blocks = [block for block in re.split(r'\n\s*\n', normalize(text)) if block.strip()] or ['—']
    paragraphs = [_text_paragraph(block.strip('\n'), styles['body']) for block in blocks]
    # The heading stays on the same page as the first paragraph of its section.
    return [KeepTogether([Paragraph(heading_markup, styles['heading']), paragraphs[0]]), *paragraphs[1:]]


def _key_images(images: tuple[PdfKeyImage, ...], styles: dict[str, ParagraphStyle]) -> list[Flowable]:
    """Return the key images two per row, each with its place in the study and the doctor's caption."""
    column_width = (A4[0] - 2 * PAGE_MARGIN - KEY_IMAGE_GAP) / 2
    cells = []
    for item in images:
        reader = ImageReader(io.BytesIO(item.image))
        pixel_width, pixel_height = reader.getSize()
        scale = min(column_width / pixel_width, column_width / pixel_height)
        figure: list[Flowable] = [Image(io.BytesIO(item.image), width=pixel_width * scale,
                                        height=pixel_height * scale)]
        figure.append(Paragraph(markup(item.label), styles['figure_label']))
        if item.caption.strip():
            figure.append(_text_paragraph(item.caption, styles['body']))
        cells.append(figure)
    if len(cells) % 2:
        cells.append([])
    # One table per row, so that a page break falls between rows and the signature can follow the last row.
    tables = []
    for index in range(0, len(cells), 2):
        table = Table([cells[index:index + 2]], colWidths=[column_width + KEY_IMAGE_GAP / 2] * 2)
        table.setStyle(TableStyle([
            ('VALIGN', (0, 0), (-1, -1), 'TOP'),
            ('LEFTPADDING', (0, 0), (-1, -1), 0),
            ('RIGHTPADDING', (0, 0), (-1, -1), KEY_IMAGE_GAP / 2),
            ('BOTTOMPADDING', (0, 0), (-1, -1), 3 * mm),
        ]))
        tables.append(table)
    # The heading stays on the same page as the first row.
    return [KeepTogether([Paragraph(markup(_('Key images')), styles['heading']), tables[0]]), *tables[1:]]


def _signature(data: ReportPdfData, styles: dict[str, ParagraphStyle]) -> list[Flowable]:
    """Return the signature flowables: a line to sign on, the doctor's name and credentials, and the signing time."""
    # No-break spaces keep the date, time and "UTC" on one line.
    signed_at = _utc_text(data.finalized_at).replace(' ', NO_BREAK_SPACE)
    credentials = f'{markup(data.doctor_specialty)} · ' + _('License {license}', license=markup(data.doctor_license))
    statement = _('Electronically signed by {name} ({specialty}), License {license}, on {time}',
                  name=markup(data.doctor_name), specialty=markup(data.doctor_specialty),
                  license=markup(data.doctor_license), time=signed_at)
    return [
        HRFlowable(width=75 * mm, thickness=0.8, color=colors.black, hAlign='LEFT', spaceBefore=14 * mm,
                   spaceAfter=2 * mm),
        Paragraph(f'<b>{markup(data.doctor_name)}</b>', styles['signature']),
        Paragraph(credentials, styles['signature']),
        Paragraph(statement, styles['signed']),
    ]


def _text_paragraph(text: str, style: ParagraphStyle) -> Paragraph:
    """Return a paragraph of plain text, with line breaks between CJK characters allowed if it has any."""
    if has_cjk(text):
        # ReportLab's CJK wrapping breaks lines between ideographs as well as at spaces, and Latin words
        # mostly at spaces.
        # NOTE: ReportLab 5.1 may still start a line with a full-width comma (U+FF0C), which is missing from
        # its list of characters that cannot start a line, and in rare layouts splits a long Latin word.
        style = ParagraphStyle(f'{style.name}-cjk', parent=style, wordWrap='CJK')
    return Paragraph(markup(text), style)


def _utc_text(moment: datetime) -> str:
    """Format a moment in UTC: "2026-12-05 14:30 UTC" in English, "5 Aralık 2026 14:30 UTC" in Turkish."""
    if i18n.current_language() == 'en':
        return moment.astimezone(UTC).strftime('%Y-%m-%d %H:%M UTC')
    return i18n.format_datetime(moment, ZoneInfo('UTC'), with_zone=False) + ' UTC'


def _day_text(day: date) -> str:
    """Format a date: ISO 8601 in English, as the report always printed it, and the locale's words otherwise."""
    return day.isoformat() if i18n.current_language() == 'en' else i18n.format_date(day)
