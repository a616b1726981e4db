"""Helpers that move an examination through its states the way the pages do."""

from __future__ import annotations

from secondopinion.services import examinations, payments
from secondopinion.services.actors import Actor


def draft_with_link(patient: Actor, *, modality: str = 'CT', urgency: str = 'routine', body_part: str = 'Chest') -> str:
    exam_id = examinations.create_draft(actor=patient)
    examinations.update_details(actor=patient, examination_id=exam_id, modality=modality, body_part=body_part,
                                clinical_question='Is the nodule in the right upper lobe benign?',
                                history='Smoker, 20 pack-years', urgency=urgency)
    examinations.add_link(actor=patient, examination_id=exam_id, url='https://pacs.example.org/share/abc')
    return exam_id


def submitted(patient: Actor, **kwargs: str) -> str:
    exam_id = draft_with_link(patient, **kwargs)
    examinations.submit(actor=patient, examination_id=exam_id)
    return exam_id


def paid(patient: Actor, **kwargs: str) -> str:
    exam_id = submitted(patient, **kwargs)
    url = payments.start_checkout(actor=patient, examination_id=exam_id)
    payments.complete_test_checkout(actor=patient, provider_ref=url.rsplit('/', 1)[1])
    return exam_id


REPORT = {'findings': 'A 6 mm solid nodule in the right upper lobe, smooth margins.',
          'impression': 'Probably benign nodule.', 'recommendations': 'Follow-up CT in 12 months.'}


def reported(patient: Actor, doctor: Actor, **kwargs: str) -> str:
    """Pay, accept and finalize an examination with an image link; return its id."""
    from secondopinion.services import reports

    exam_id = paid(patient, **kwargs)
    examinations.accept(actor=doctor, examination_id=exam_id)
    reports.finalize(actor=doctor, examination_id=exam_id, **REPORT)
    return exam_id
