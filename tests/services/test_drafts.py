"""Draft progress on a real database: missing requirements, the step a draft opens at, recognized images, price."""

from __future__ import annotations

from pathlib import Path

import pytest

from secondopinion.services import drafts, examinations, studies
from secondopinion.services.errors import ConflictError, NotFoundError, ValidationError

from .dicom_files import write_variant
from .flow import draft_with_link, submitted


def test_new_draft_misses_everything(make_patient):
    patient = make_patient()
    exam_id = examinations.create_draft(actor=patient)
    progress = drafts.draft_progress(actor=patient, examination_id=exam_id)
    assert [item.field for item in progress.missing] == ['modality', 'body_part', 'clinical_question', 'images']
    assert not progress.complete
    assert progress.first_open_step == drafts.STEP_IMAGES
    assert progress.image_count == 0
    assert progress.recognized == ()
    assert progress.quote.price_cents is None


def test_draft_with_link_opens_at_details(make_patient):
    patient = make_patient()
    exam_id = examinations.create_draft(actor=patient)
    examinations.add_link(actor=patient, examination_id=exam_id, url='https://pacs.example.org/share/abc')
    progress = drafts.draft_progress(actor=patient, examination_id=exam_id)
    assert progress.missing_in(drafts.STEP_IMAGES) == ()
    assert progress.first_open_step == drafts.STEP_DETAILS
    assert progress.link_count == 1


def test_complete_draft_opens_at_review(make_patient):
    patient = make_patient()
    exam_id = draft_with_link(patient, modality='MR', urgency='urgent')
    progress = drafts.draft_progress(actor=patient, examination_id=exam_id)
    assert progress.complete
    assert progress.first_open_step == drafts.STEP_REVIEW
    assert progress.quote.routine_cents == 18000
    assert progress.quote.price_cents == 27000
    assert progress.quote.currency == 'EUR'


def test_quote_matches_submitted_price(make_patient):
    patient = make_patient()
    for modality, urgency in (('CT', 'routine'), ('MR', 'urgent'), ('NM', 'urgent')):
        quote = drafts.quote(modality, urgency)
        exam_id = submitted(patient, modality=modality, urgency=urgency)
        assert examinations.get_exam(actor=patient, examination_id=exam_id).price_cents == quote.price_cents


def test_submit_lists_same_missing_labels(make_patient):
    patient = make_patient()
    exam_id = examinations.create_draft(actor=patient)
    examinations.update_details(actor=patient, examination_id=exam_id, modality='CT', body_part='',
                                clinical_question='Is it benign?')
    progress = drafts.draft_progress(actor=patient, examination_id=exam_id)
    with pytest.raises(ValidationError) as error:
        examinations.submit(actor=patient, examination_id=exam_id)
    expected = 'Cannot submit yet. Missing: ' + ', '.join(item.label for item in progress.missing) + '.'
    assert str(error.value) == expected
    assert expected == 'Cannot submit yet. Missing: body part, images (upload DICOM files or add a link).'


def test_recognized_study_from_headers(make_patient, tmp_path: Path):
    patient = make_patient()
    exam_id = examinations.create_draft(actor=patient)
    scan = write_variant(tmp_path / 'scan.dcm', BodyPartExamined='LOWER_LEG', StudyDate='20240317')
    studies.add_files(actor=patient, examination_id=exam_id, files=[('scan.dcm', scan)])
    progress = drafts.draft_progress(actor=patient, examination_id=exam_id)
    assert progress.image_count == 1
    assert progress.missing_in(drafts.STEP_IMAGES) == ()
    [study] = progress.recognized
    assert study.modality == 'CT'
    assert study.body_parts == ('Lower leg',)
    assert study.date == '2024-03-17'
    assert study.series_count == 1
    assert study.image_count == 1


def test_progress_of_others_draft_not_found(make_patient):
    alice, bob = make_patient('Alice'), make_patient('Bob')
    exam_id = examinations.create_draft(actor=alice)
    with pytest.raises(NotFoundError):
        drafts.draft_progress(actor=bob, examination_id=exam_id)


def test_progress_of_submitted_exam_conflicts(make_patient):
    patient = make_patient()
    exam_id = submitted(patient)
    with pytest.raises(ConflictError):
        drafts.draft_progress(actor=patient, examination_id=exam_id)
