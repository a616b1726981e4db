"""How far a patient's draft examination is: what is still missing, what the images contain, and the price.

The new-examination form is a stepper (images, details, review, payment). This module decides
which step a draft opens at, which fields still need a value, and what the review shows, so that
`examinations.submit` and the form apply the same rules.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from ..i18n import N_
from ..config import get_settings
from ..db import session_scope
from ..models import Examination, StudyFile
from .access import get_own_draft
from .actors import Actor
from .studies import StudySummary, get_study_summary

STEP_IMAGES = 'images'
STEP_DETAILS = 'details'
STEP_REVIEW = 'review'
STEP_PAYMENT = 'payment'
STEPS = (STEP_IMAGES, STEP_DETAILS, STEP_REVIEW, STEP_PAYMENT)


@dataclass(frozen=True)
class MissingItem:
    """A requirement for submitting that the draft does not meet yet."""

    field: str  # 'images' or the form field: 'modality', 'body_part', 'clinical_question'
    step: str  # the form step where the patient supplies it
    label: str  # as the "Missing: ..." list names it (an English msgid, translated where shown)
    message: str  # shown on the form field (an English msgid, translated where shown)


DETAIL_REQUIREMENTS = (
    ('modality', N_('type of examination'), N_('Choose the type of examination.')),
    ('body_part', N_('body part'), N_('Enter the body part that was examined, such as chest or left knee.')),
    ('clinical_question', N_('clinical question'), N_('Write the question that the radiologist should answer.')),
)
IMAGES_ITEM = MissingItem('images', STEP_IMAGES, N_('images (upload DICOM files or add a link)'),
                          N_('Upload the DICOM files of your study or add a link to the images.'))


@dataclass(frozen=True)
class RecognizedStudy:
    """Type, body parts, date and counts read from the DICOM headers of one uploaded study."""

    modality: str  # the modalities of its series, joined with "/"
    body_parts: tuple[str, ...]  # as the series name them, such as "Chest", without repeats
    date: str  # ISO date, '' when the images have none
    description: str
    series_count: int
    image_count: int


@dataclass(frozen=True)
class PriceQuote:
    """Price in cents that submitting the draft would fix now. The amounts are None until a type is chosen."""

    price_cents: int | None
    routine_cents: int | None
    currency: str
    urgent_surcharge_percent: int


@dataclass(frozen=True)
class DraftProgress:
    """A draft's missing requirements, its uploaded studies and links, and the price it would have."""

    missing: tuple[MissingItem, ...]
    image_count: int
    link_count: int
    recognized: tuple[RecognizedStudy, ...]
    quote: PriceQuote

    @property
    def complete(self) -> bool:
        return not self.missing

    def missing_in(self, step: str) -> tuple[MissingItem, ...]:
        return tuple(item for item in self.missing if item.step == step)

    @property
    def first_open_step(self) -> str:
        """Return the step a draft opens at without a step in the address: the first with something missing."""
        for step in (STEP_IMAGES, STEP_DETAILS):
            if self.missing_in(step):
                return step
        return STEP_REVIEW


def missing_items(session: Session, exam: Examination) -> list[MissingItem]:
    """List what the draft still needs before it can be submitted: the details first, then the images."""
    missing = [MissingItem(field, STEP_DETAILS, label, message)
               for field, label, message in DETAIL_REQUIREMENTS if not getattr(exam, field)]
    has_images = session.scalar(select(func.count()).select_from(StudyFile).where(
        StudyFile.examination_id == exam.id, StudyFile.kind == 'dicom'))
    if not has_images and not exam.links:
        missing.append(IMAGES_ITEM)
    return missing


def quote(modality: str, urgency: str) -> PriceQuote:
    """Return the price of an examination of this modality and urgency, as `examinations.submit` would fix it."""
    settings = get_settings()
    if not modality:
        return PriceQuote(None, None, settings.currency, settings.urgent_surcharge_percent)
    return PriceQuote(settings.price_for(modality, urgency), settings.price_for(modality, 'routine'),
                      settings.currency, settings.urgent_surcharge_percent)


def draft_progress(*, actor: Actor, examination_id: str) -> DraftProgress:
    """Return what the acting patient's draft still needs, what its images contain and its current price.

    Raises NotFoundError for another patient's examination and ConflictError once it was submitted.
    """
    with session_scope() as session:
        exam = get_own_draft(session, actor, examination_id)
        missing = tuple(missing_items(session, exam))
        link_count = len(exam.links)
        price = quote(exam.modality, exam.urgency)
    images = get_study_summary(actor=actor, examination_id=examination_id)
    recognized = tuple(_recognize(study) for study in images.studies)
    return DraftProgress(missing=missing, image_count=images.image_count, link_count=link_count,
                         recognized=recognized, quote=price)


def _recognize(study: StudySummary) -> RecognizedStudy:
    body_parts: list[str] = []
    for series in study.series:
        # DICOM writes body parts in capitals with underscores, such as "LOWER_LEG".
        readable = series.body_part.replace('_', ' ').capitalize()
        if readable and readable not in body_parts:
            body_parts.append(readable)
    return RecognizedStudy(modality=study.modality, body_parts=tuple(body_parts),
                           date=study.date.isoformat() if study.date else '', description=study.description,
                           series_count=len(study.series),
                           image_count=sum(series.image_count for series in study.series))
