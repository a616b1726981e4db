"""The report workflow: technique and comparison sections, templates, and addenda as new signed versions."""

from __future__ import annotations

import hashlib
import shutil
import subprocess

import pytest
from sqlalchemy import select

from secondopinion import db
from secondopinion.models import Notification
from secondopinion.services import examinations, reports
from secondopinion.services.errors import ConflictError, NotFoundError, ValidationError
from secondopinion.services.report_templates import templates_for

from .dicom_files import stored_blobs
from .flow import paid

SECTIONS = {'technique': 'Non-contrast CT of the chest.', 'findings': 'A 6 mm solid nodule, right upper lobe.',
            'impression': 'Probably benign.', 'recommendations': 'CT in 12 months.'}


def _pdf_text(data: bytes, tmp_path) -> str:  # noqa: ANN001
    if shutil.which('pdftotext') is None:
        pytest.skip('pdftotext is missing: install poppler-utils')
    path = tmp_path / 'report.pdf'
    path.write_bytes(data)
    return subprocess.run(['pdftotext', '-layout', str(path), '-'], capture_output=True, text=True,
                          check=True).stdout


def _download(actor, exam_id: str, version: int | None = None) -> bytes:  # noqa: ANN001
    _name, chunks = reports.open_report_pdf(actor=actor, examination_id=exam_id, version=version)
    return b''.join(chunks)


@pytest.fixture
def case(make_patient, make_doctor):  # noqa: ANN201
    patient, doctor = make_patient(), make_doctor()
    exam_id = paid(patient)
    examinations.accept(actor=doctor, examination_id=exam_id)
    return patient, doctor, exam_id


def test_technique_saved_and_printed(case, tmp_path):
    patient, doctor, exam_id = case
    reports.finalize(actor=doctor, examination_id=exam_id, **SECTIONS)
    view = reports.get_report(actor=patient, examination_id=exam_id)
    assert view.technique == SECTIONS['technique']
    assert 'Non-contrast CT of the chest.' in _pdf_text(_download(patient, exam_id), tmp_path)


def test_comparison_required_when_patient_gave_a_report(make_patient, make_doctor, tmp_path):
    patient, doctor = make_patient(), make_doctor()
    exam_id = examinations.create_draft(actor=patient)
    examinations.update_details(actor=patient, examination_id=exam_id, modality='CT', body_part='Chest',
                                clinical_question='Is it benign?', prior_report_text='A 9 mm nodule.')
    examinations.add_link(actor=patient, examination_id=exam_id, url='https://pacs.example.org/share/1')
    examinations.submit(actor=patient, examination_id=exam_id)
    from secondopinion.services import payments
    ref = payments.start_checkout(actor=patient, examination_id=exam_id).rsplit('/', 1)[1]
    payments.complete_test_checkout(actor=patient, provider_ref=ref)
    examinations.accept(actor=doctor, examination_id=exam_id)
    assert reports.has_first_report(actor=doctor, examination_id=exam_id)

    with pytest.raises(ValidationError, match='agrees, partly agrees or disagrees'):
        reports.finalize(actor=doctor, examination_id=exam_id, **SECTIONS)
    with pytest.raises(ValidationError, match='Comparison "maybe" is invalid'):
        reports.save_draft(actor=doctor, examination_id=exam_id, **SECTIONS, comparison='maybe')
    reports.finalize(actor=doctor, examination_id=exam_id, **SECTIONS, comparison='partly_agrees',
                     comparison_note='The nodule measures 6 mm, not 9 mm.')
    text = _pdf_text(_download(patient, exam_id), tmp_path)
    assert 'Partly agrees with the first report' in text
    assert 'The nodule measures 6 mm, not 9 mm.' in text


def test_no_comparison_needed_without_first_report(case):
    _patient, doctor, exam_id = case
    assert not reports.has_first_report(actor=doctor, examination_id=exam_id)
    reports.finalize(actor=doctor, examination_id=exam_id, **SECTIONS)


def test_addendum_adds_version_keeps_first(case, tmp_path):
    patient, doctor, exam_id = case
    reports.finalize(actor=doctor, examination_id=exam_id, **SECTIONS)
    first = _download(patient, exam_id)
    first_sha = reports.get_report(actor=patient, examination_id=exam_id).pdf_sha256
    assert hashlib.sha256(first).hexdigest() == first_sha

    assert reports.add_addendum(actor=doctor, examination_id=exam_id, text='The nodule is in segment 2.') == 2
    assert reports.add_addendum(actor=doctor, examination_id=exam_id, text='Second note.') == 3
    view = reports.get_report(actor=patient, examination_id=exam_id)
    assert view.version == 3
    assert [addendum.number for addendum in view.addenda] == [1, 2]
    assert view.findings == SECTIONS['findings']  # the signed text never changes

    assert _download(patient, exam_id, version=1) == first
    latest = _pdf_text(_download(patient, exam_id), tmp_path)
    assert 'The nodule is in segment 2.' in latest
    assert 'Second note.' in latest
    assert latest.index('The nodule is in segment 2.') < latest.index('Second note.')
    version_two = _pdf_text(_download(patient, exam_id, version=2), tmp_path)
    assert 'The nodule is in segment 2.' in version_two
    assert 'Second note.' not in version_two
    with pytest.raises(NotFoundError):
        _download(patient, exam_id, version=4)

    with db.session_scope() as session:
        amended = session.scalars(select(Notification).where(Notification.examination_id == exam_id,
                                                             Notification.template == 'report_amended')).all()
        assert len(amended) == 2
        assert all(row.attachment_key for row in amended)


def test_addendum_rules(case, make_doctor):
    _patient, doctor, exam_id = case
    with pytest.raises(ConflictError, match='Only a finalized report'):
        reports.add_addendum(actor=doctor, examination_id=exam_id, text='Too early.')
    reports.finalize(actor=doctor, examination_id=exam_id, **SECTIONS)
    with pytest.raises(ValidationError, match='The addendum is empty'):
        reports.add_addendum(actor=doctor, examination_id=exam_id, text='   ')
    other = make_doctor('Dr. Other', email='other@example.org')
    with pytest.raises(NotFoundError):
        reports.add_addendum(actor=other, examination_id=exam_id, text='Not my case.')


def test_failed_addendum_leaves_no_file(case, monkeypatch):
    _patient, doctor, exam_id = case
    reports.finalize(actor=doctor, examination_id=exam_id, **SECTIONS)
    from secondopinion.services import notifications

    def broken(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        raise RuntimeError('outbox unavailable')

    monkeypatch.setattr(notifications, 'notify_patient', broken)
    with pytest.raises(RuntimeError):
        reports.add_addendum(actor=doctor, examination_id=exam_id, text='Lost note.')
    assert not any('-v2-' in path.name for path in stored_blobs())
    assert len([path for path in stored_blobs() if path.suffix == '.pdf']) == 1
    assert reports.get_report(actor=doctor, examination_id=exam_id).version == 1


def test_templates_per_modality():
    names = [template.name for template in templates_for('ct')]
    assert names[:3] == ['CT chest', 'CT abdomen and pelvis', 'CT head']
    assert names[-1] == 'General'
    assert [template.name for template in templates_for('XA')] == ['General']

