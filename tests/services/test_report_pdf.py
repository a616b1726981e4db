"""Report PDF rendering, checked by extracting the text with poppler's pdftotext and with pypdf."""

from __future__ import annotations

import dataclasses
import io
import shutil
import subprocess
from datetime import UTC, date, datetime

import pytest
from pypdf import PdfReader

from secondopinion.services.report_pdf import PdfAddendum, ReportPdfData, render_report_pdf

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


# --- pypdf: text extraction per script, embedded fonts, new sections --------------------------

SCRIPTS = [
    ('turkish', 'Şükrü Yılmaz', 'Sağ akciğerde 6 mm çapında nodül görüldü.'),
    ('greek', 'Γιώργος Παπαδόπουλος', 'Το υπεζωκοτικό υγρό απουσιάζει.'),
    ('cyrillic', 'Иван Петров', 'Плевральный выпот отсутствует.'),
    ('chinese', '王小明', '右肺上叶见一结节，边界清楚，建议随访。'),
    ('japanese', '山田太郎', '右上葉に6mmの結節があり、前回の報告より小さい。ヤマダ'),
    ('korean', '김민준', '흉막 삼출은 없습니다. 결절은 작아졌습니다.'),
]


def pypdf_pages(pdf: bytes) -> list[str]:
    return [page.extract_text() for page in PdfReader(io.BytesIO(pdf)).pages]


def words(text: str) -> str:
    """Return the text with each run of whitespace, no-break spaces included, as one space."""
    return ' '.join(text.split())


def without_spaces(text: str) -> str:
    """Return the text without whitespace, because a line may wrap between two CJK characters."""
    return ''.join(text.split())


def embedded_fonts(pdf: bytes) -> dict[str, str | None]:
    """Map the base font name of each font on any page to the key of its embedded font file, if any."""
    fonts: dict[str, str | None] = {}
    for page in PdfReader(io.BytesIO(pdf)).pages:
        for font in page['/Resources']['/Font'].values():
            font = font.get_object()
            descriptor = font.get('/FontDescriptor')
            descriptor = descriptor.get_object() if descriptor is not None else {}
            fonts[str(font['/BaseFont'])] = next(
                (key for key in ('/FontFile', '/FontFile2', '/FontFile3') if key in descriptor), None)
    return fonts


@pytest.mark.parametrize(('script', 'name', 'text'), SCRIPTS, ids=[row[0] for row in SCRIPTS])
def test_pypdf_extracts_script(script, name, text):
    pdf = render_report_pdf(sample(patient_name=name, doctor_name=name, findings=text))
    extracted = '\n'.join(pypdf_pages(pdf))
    assert name in words(extracted), f'{script} name'
    assert without_spaces(text) in without_spaces(extracted), f'{script} findings'


def test_mixed_scripts_in_one_paragraph():
    pdf = render_report_pdf(sample(findings='Seen with Şükrü Yılmaz and 山田太郎, Иван and 김민준 today.'))
    extracted = words(' '.join(pypdf_pages(pdf)))
    assert 'Seen with Şükrü Yılmaz and 山田太郎, Иван and 김민준 today.' in extracted


def test_cjk_and_latin_fonts_are_embedded():
    fonts = embedded_fonts(render_report_pdf(sample(patient_name='山田太郎', findings='김민준 Şükrü')))
    cjk = [name for name in fonts if name.endswith('+DroidSansFallback')]
    dejavu = [name for name in fonts if name.endswith('+DejaVuSans')]
    assert cjk, f'no CJK font in {sorted(fonts)}'
    assert dejavu, f'no DejaVu Sans in {sorted(fonts)}'
    for name in cjk + dejavu:
        assert fonts[name] == '/FontFile2', f'{name} is not embedded as TrueType'


def test_cjk_font_is_subset():
    # The whole CJK font file is 3.4 MB, so a PDF this small must embed only the glyphs used.
    text = ' '.join(text for _, _, text in SCRIPTS)
    pdf = render_report_pdf(sample(findings=text, impression=text))
    assert len(pdf) < 150_000


def test_long_cjk_report_numbers_every_page():
    paragraph = ('The liver has normal size and homogeneous attenuation. 肝脏大小正常，密度均匀，未见局灶性病变。'
                 '간은 정상 크기입니다. ') * 4
    findings = '\n\n'.join(f'{number}. {paragraph}' for number in range(1, 41))
    page_texts = pypdf_pages(render_report_pdf(sample(findings=findings)))
    count = len(page_texts)
    assert count >= 3
    for number, page in enumerate(page_texts, start=1):
        assert f'Page {number} of {count}' in page, f'page {number} footer'
    assert 'Second Opinion Radiology Report' in page_texts[0]
    for number, page in enumerate(page_texts[1:], start=2):
        assert 'Second Opinion Radiology Report' not in page, f'title repeated on page {number}'
    assert without_spaces(paragraph) in without_spaces(page_texts[1])


def test_long_paragraph_without_blank_lines_spans_pages():
    findings = 'Ветвление бронхов обычное, просвет не сужен. ' * 150
    page_texts = pypdf_pages(render_report_pdf(sample(findings=findings)))
    assert len(page_texts) >= 2
    # pypdf returns the footer, which is drawn first, at the start of each page.
    footer_lines = {f'SecondOpinion Radiology · Examination {EXAM_ID}',
                    *(f'Page {number} of {len(page_texts)}' for number in range(1, len(page_texts) + 1))}
    body = [line for page in page_texts for line in page.splitlines() if line.strip() not in footer_lines]
    assert without_spaces(findings) in without_spaces(''.join(body))


ADDENDA = (
    PdfAddendum(number=2, text='Discussed with the referring doctor.', doctor_name='Иван Петров',
                signed_at=datetime(2026, 12, 6, 10, 0, tzinfo=UTC)),
    PdfAddendum(number=1, text='Measured again on thin slices: 6 mm.', doctor_name='山田太郎',
                signed_at=datetime(2026, 12, 5, 9, 30, tzinfo=UTC)),
)


def test_sections_and_addenda_in_order():
    pdf = render_report_pdf(sample(
        technique='Low-dose CT without contrast.', comparison='Partly agrees: the nodule is smaller than described',
        original_report_note='First report: 8 mm nodule.', version=3, addenda=ADDENDA))
    text = words(' '.join(pypdf_pages(pdf)))
    expected_order = [
        'Clinical question', 'Original report', 'Technique', 'Low-dose CT without contrast.', 'Findings',
        'Impression', 'Comparison with the first report', 'Partly agrees: the nodule is smaller than described',
        'Recommendations', 'Electronically signed by Zoë Łukasiewicz',
        'Addendum 1 (signed 2026-12-05 09:30 UTC by 山田太郎)', 'Measured again on thin slices: 6 mm.',
        'Addendum 2 (signed 2026-12-06 10:00 UTC by Иван Петров)', 'Discussed with the referring doctor.',
    ]
    positions = []
    for part in expected_order:
        assert part in text, part
        positions.append(text.index(part))
    assert positions == sorted(positions), f'sections out of order: {positions}'


def test_empty_technique_and_comparison_are_hidden():
    text = words(' '.join(pypdf_pages(render_report_pdf(sample()))))
    assert 'Technique' not in text
    assert 'Comparison with the first report' not in text
    assert 'Addendum' not in text


def test_version_shown_above_one():
    text = words(' '.join(pypdf_pages(render_report_pdf(sample(version=2, addenda=ADDENDA[1:])))))
    assert 'Second Opinion Radiology Report · Version 2' in text
    assert 'Version 2' in text.split('Second Opinion Radiology Report ·')[0], 'header lacks the version'


def test_version_one_not_shown():
    text = words(' '.join(pypdf_pages(render_report_pdf(sample(version=1)))))
    assert 'Version' not in text


def test_footer_practice_name_in_cjk():
    page_texts = pypdf_pages(render_report_pdf(sample(practice_name='東京画像診断クリニック')))
    assert f'東京画像診断クリニック · Examination {EXAM_ID}' in words(page_texts[0])


def test_naive_addendum_time_is_rejected():
    addendum = PdfAddendum(number=1, text='Late note.', doctor_name='Zoë Łukasiewicz',
                           signed_at=datetime(2026, 12, 5, 9, 30))
    with pytest.raises(ValueError, match='addendum 1 must be timezone-aware'):
        render_report_pdf(sample(addenda=(addendum,)))
