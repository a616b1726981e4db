"""Benchmark: rendering a two-page report PDF with a key image, against a bare ReportLab document.

Run with `.venv/bin/python -m bench.report [--repeat 10]`. It times `report_pdf.render_report_pdf` on a
report whose findings fill two A4 pages and that prints one key image (a synthetic 512 x 512 CT slice as
JPEG, as the viewer renders it), and as the baseline one pass of a plain ReportLab SimpleDocTemplate with
the same paragraphs in Helvetica and the same image. The app renders two passes (the footer's page count
is known only after the first), embeds its fonts and draws a header and footer, so a ratio near 2 to 3 is
expected. Both are the median of `repeat` runs.
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


def key_image_jpeg() -> bytes:
    """Return a 512 x 512 slice with a body outline and noise, windowed and encoded as the viewer does."""
    import numpy as np
    from PIL import Image

    from secondopinion.services.viewer import IMAGE_FORMATS

    rows, columns = np.mgrid[0:512, 0:512]
    body = ((rows - 256) / 200.0) ** 2 + ((columns - 256) / 150.0) ** 2 < 1
    values = np.where(body, 40.0, -1000.0) + np.random.default_rng(7).normal(0, 20, (512, 512))
    pixels = np.clip((values + 160) / 400 * 255, 0, 255).astype(np.uint8)  # window C 40 / W 400
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format='JPEG', **IMAGE_FORMATS['JPEG'])
    return buffer.getvalue()


def report_data():  # noqa: ANN201 (ReportPdfData, imported lazily)
    from secondopinion.services.report_pdf import PdfKeyImage, ReportPdfData

    findings = '\n\n'.join(f'{number + 1}. {PARAGRAPH}' for number in range(FINDINGS_PARAGRAPHS))
    return ReportPdfData(
        practice_name='SecondOpinion', report_id='R-BENCH', examination_id='bench', patient_name='Bench Patient',
        patient_birth_date=date(1980, 1, 1), modality='CT', body_part='Chest', clinical_question='Nodule?',
        study_summary='1 study, 1 series, 300 images', doctor_name='Dr. Bench', doctor_license='BENCH-1',
        doctor_specialty='Radiology', findings=findings, impression='No acute findings.',
        recommendations='No follow-up needed.', finalized_at=datetime(2026, 12, 4, 12, 0, tzinfo=UTC),
        key_images=(PdfKeyImage(image=key_image_jpeg(), label='Series 2 (Axial), slice 120, window C 40 / W 400',
                                caption='No focal lesion.'),))


def bare_reportlab(findings: str, image: bytes) -> bytes:
    from reportlab.lib.pagesizes import A4
    from reportlab.lib.styles import getSampleStyleSheet
    from reportlab.lib.units import mm
    from reportlab.platypus import Image, Paragraph, SimpleDocTemplate

    buffer = io.BytesIO()
    styles = getSampleStyleSheet()
    SimpleDocTemplate(buffer, pagesize=A4).build(
        [*(Paragraph(text, styles['BodyText']) for text in findings.split('\n\n')),
         Image(io.BytesIO(image), width=84 * mm, height=84 * mm)])
    return buffer.getvalue()


def page_count(pdf: bytes) -> int:
    from pypdf import PdfReader

    return len(PdfReader(io.BytesIO(pdf)).pages)


def run(*, repeat: int) -> list[Result]:
    from secondopinion.services.report_pdf import render_report_pdf

    data = report_data()
    pages = page_count(render_report_pdf(data))
    baseline = median_seconds(lambda: bare_reportlab(data.findings, data.key_images[0].image), repeat)
    seconds = median_seconds(lambda: render_report_pdf(data), repeat)
    return [Result('report', f'{pages}-page report PDF', seconds * 1000, 'ms', baseline * 1000,
                   note=f'one key image, median of {repeat}')]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--repeat', type=int, default=10, help='timed runs; the median is reported')
    args = parser.parse_args()
    print(format_table(run(repeat=args.repeat)))


if __name__ == '__main__':
    main()
