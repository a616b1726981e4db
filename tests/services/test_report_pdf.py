"""Report PDF rendering, checked by extracting the text with poppler's pdftotext."""

from __future__ import annotations

import dataclasses
import shutil
import subprocess
from datetime import UTC, date, datetime

import pytest

from secondopinion.services.report_pdf import ReportPdfData, render_report_pdf

PDFTOTEXT = shutil.which('pdftotext')
needs_pdftotext = pytest.mark.skipif(
    PDFTOTEXT is None, reason='pdftotext is missing: install poppler-utils (apt-get install poppler-utils)')

EXAM_ID = '0f1e2d3c4b5a69788796a5b4c3d2e1f0'


def sample(**changes) -> ReportPdfData:
    data = ReportPdfData(
        practice_name='SecondOpinion Radiology', report_id='42', examination_id=EXAM_ID,
        patient_name='Şükrü Yılmaz', patient_birth_date=date(1971, 3, 9), modality='CT', body_part='Chest',
        clinical_question='Persistent cough for three months.\nSmoker, 30 pack-years.',
        study_summary='CT, 2 series, 3 images, study date 2004-01-19',
        doctor_name='Zoë Łukasiewicz', doctor_license='LIC-00042', doctor_specialty='Thoracic radiology',
        findings='Lungs are clear.\nNo pleural effusion.', impression='Normal chest CT.',
        recommendations='No follow-up needed.', finalized_at=datetime(2024, 1, 19, 14, 3, 27, tzinfo=UTC),
        original_report_note='',
    )
    return dataclasses.replace(data, **changes)


def pdf_text(pdf: bytes) -> str:
    """Return the text of every page, pages separated by form feeds, in reading layout."""
    assert PDFTOTEXT is not None
    result = subprocess.run([PDFTOTEXT, '-layout', '-enc', 'UTF-8', '-', '-'], input=pdf, capture_output=True,
                            check=True, timeout=60)
    return result.stdout.decode('utf-8')


def pages(pdf: bytes) -> list[str]:
    return [page for page in pdf_text(pdf).split('\f') if page.strip()]


def test_pdf_has_pdf_header_and_trailer():
    pdf = render_report_pdf(sample())
    assert pdf.startswith(b'%PDF-')
    assert pdf.rstrip().endswith(b'%%EOF')


@needs_pdftotext
def test_pdf_shows_non_latin_names():
    text = pdf_text(render_report_pdf(sample()))
    assert 'Şükrü Yılmaz' in text
    assert 'Zoë Łukasiewicz' in text


@needs_pdftotext
def test_pdf_shows_patient_and_exam_details():
    text = pdf_text(render_report_pdf(sample(original_report_note='The patient provided the first report.')))
    assert 'Second Opinion Radiology Report' in text
    assert '1971-03-09' in text
    assert EXAM_ID in text
    assert 'CT, 2 series, 3 images, study date 2004-01-19' in text
    assert 'The patient provided the first report.' in text
    for heading in ('Clinical question', 'Findings', 'Impression', 'Recommendations'):
        assert heading in text, heading


@needs_pdftotext
def test_pdf_prints_doctor_markup_literally():
    pdf = render_report_pdf(sample(findings='Nodule <b>8 mm</b> & <unclosed tag, a<b', impression='A & B <i>'))
    text = pdf_text(pdf)
    assert 'Nodule <b>8 mm</b> & <unclosed tag, a<b' in text
    assert 'A & B <i>' in text


@needs_pdftotext
def test_pdf_keeps_line_breaks():
    text = pdf_text(render_report_pdf(sample(findings='First finding line\nSecond finding line')))
    lines = [line.strip() for line in text.splitlines()]
    assert 'First finding line' in lines
    assert 'Second finding line' in lines


@needs_pdftotext
def test_signature_shows_license_and_utc_time():
    text = ' '.join(pdf_text(render_report_pdf(sample())).split())
    assert 'Electronically signed by Zoë Łukasiewicz (Thoracic radiology), License LIC-00042' in text
    assert 'on 2024-01-19 14:03 UTC' in text


@needs_pdftotext
def test_long_findings_span_pages_with_footers():
    paragraph = ('The liver has normal size and homogeneous attenuation without focal lesions. '
                 'The portal vein is patent. ') * 4
    findings = '\n\n'.join(f'{number}. {paragraph}' for number in range(1, 41))
    page_texts = pages(render_report_pdf(sample(findings=findings)))
    count = len(page_texts)
    assert count >= 2
    for number, page in enumerate(page_texts, start=1):
        assert f'Page {number} of {count}' in page, f'page {number} footer'
        assert f'Examination {EXAM_ID}' in page, f'page {number} examination id'
    assert 'Electronically signed by' in page_texts[-1]


def test_identical_input_gives_identical_bytes():
    first = render_report_pdf(sample())
    second = render_report_pdf(sample())
    assert first == second


def test_different_patient_gives_different_bytes():
    assert render_report_pdf(sample()) != render_report_pdf(sample(patient_name='Another Name'))


def test_naive_finalized_time_is_rejected():
    with pytest.raises(ValueError, match='timezone-aware'):
        render_report_pdf(sample(finalized_at=datetime(2024, 1, 19, 14, 3)))


def test_creation_date_is_signing_time():
    pdf = render_report_pdf(sample(finalized_at=datetime(2026, 3, 9, 7, 45, 12, tzinfo=UTC)))
    assert b"/CreationDate (D:20260309074512+00'00')" in pdf
    assert b"/ModDate (D:20260309074512+00'00')" in pdf
