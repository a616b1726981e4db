"""Benchmark: rendering a two-page report PDF, against a bare ReportLab document with the same text.

Run with `.venv/bin/python -m bench.report [--repeat 10]`. It times `report_pdf.render_report_pdf` on a
report whose findings fill two A4 pages, and as the baseline one pass of a plain ReportLab
SimpleDocTemplate with the same paragraphs in Helvetica. The app renders two passes (the footer's page
count is known only after the first), embeds its fonts and draws a header and footer, so a ratio near
2 to 3 is expected. Both are the median of `repeat` runs.

NOTE: the app's report has no key image, so the figure measures text only, although a key image is wanted.
"""

from __future__ import annotations

import argparse
import io
from datetime import UTC, date, datetime

from .common import Result, format_table, median_seconds

FINDINGS_PARAGRAPHS = 6
PARAGRAPH = ('The lungs are clear without focal consolidation, effusion or pneumothorax. The heart size is '
             'normal. The mediastinal contours are unremarkable. No suspicious pulmonary nodule is seen. The '
             'visualized upper abdomen shows no acute abnormality. The osseous structures are intact.')


def report_data():  # noqa: ANN201 (ReportPdfData, imported lazily)
    from secondopinion.services.report_pdf import ReportPdfData

    findings = '\n\n'.join(f'{number + 1}. {PARAGRAPH}' for number in range(FINDINGS_PARAGRAPHS))
    return ReportPdfData(
        practice_name='SecondOpinion', report_id='R-BENCH', examination_id='bench', patient_name='Bench Patient',
        patient_birth_date=date(1980, 1, 1), modality='CT', body_part='Chest', clinical_question='Nodule?',
        study_summary='1 study, 1 series, 300 images', doctor_name='Dr. Bench', doctor_license='BENCH-1',
        doctor_specialty='Radiology', findings=findings, impression='No acute findings.',
        recommendations='No follow-up needed.', finalized_at=datetime(2026, 12, 4, 12, 0, tzinfo=UTC))


def bare_reportlab(findings: str) -> bytes:
    from reportlab.lib.pagesizes import A4
    from reportlab.lib.styles import getSampleStyleSheet
    from reportlab.platypus import Paragraph, SimpleDocTemplate

    buffer = io.BytesIO()
    styles = getSampleStyleSheet()
    SimpleDocTemplate(buffer, pagesize=A4).build(
        [Paragraph(text, styles['BodyText']) for text in findings.split('\n\n')])
    return buffer.getvalue()


def page_count(pdf: bytes) -> int:
    from pypdf import PdfReader

    return len(PdfReader(io.BytesIO(pdf)).pages)


def run(*, repeat: int) -> list[Result]:
    from secondopinion.services.report_pdf import render_report_pdf

    data = report_data()
    pages = page_count(render_report_pdf(data))
    baseline = median_seconds(lambda: bare_reportlab(data.findings), repeat)
    seconds = median_seconds(lambda: render_report_pdf(data), repeat)
    return [Result('report', f'{pages}-page report PDF', seconds * 1000, 'ms', baseline * 1000,
                   note=f'no key image, median of {repeat}')]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--repeat', type=int, default=10, help='timed runs; the median is reported')
    args = parser.parse_args()
    print(format_table(run(repeat=args.repeat)))


if __name__ == '__main__':
    main()
