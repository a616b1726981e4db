"""Key images: slices the reporting doctor picks while reviewing, printed in the report PDF.

A key image is a reference (series, slice, window), never a copy: the PDF renders it from the
stored DICOM file when the report is finalized or amended, with the window the doctor read it at.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

from sqlalchemy import delete, func, select, update

from ..db import session_scope
from ..i18n import N_, _, error_message
from ..models import Examination, ExamStatus, Report, ReportKeyImage, Role, Series, Study
from . import audit, viewer
from .access import deny, get_visible_exam
from .actors import Actor, require_role
from .errors import ConflictError, DomainError, NotFoundError, ValidationError

logger = logging.getLogger(__name__)

# Four images, two rows of two, fill one A4 page of the PDF.
MAX_KEY_IMAGES = 4
CAPTION_LIMIT = 200
# Maximum side of a key image in the PDF, in pixels. The PDF prints it at most 84 mm wide, so 768 pixels
# give about 230 dots per inch there.
PDF_IMAGE_SIZE = 768


@dataclass(frozen=True)
class KeyImageView:
    """A key image as the editor and the report page list it."""

    id: int
    series_id: int
    slice_index: int
    window_center: float | None
    window_width: float | None
    caption: str

    series_number: int | None
    series_description: str

    @property
    def series_label(self) -> str:
        """Return the series as the viewer lists it, such as "Series 3 (Axial)", in the current language."""
        if self.series_number is None:
            return _('Series ({description})', description=self.series_description) if self.series_description \
                else _('Series')
        if self.series_description:
            return _('Series {number} ({description})', number=self.series_number,
                     description=self.series_description)
        return _('Series {number}', number=self.series_number)

    @property
    def position_label(self) -> str:
        """Return the place of the slice, such as "Series 3, slice 45" (slices count from 1), in the current language."""
        return _('{series}, slice {number}', series=self.series_label, number=self.slice_index + 1)

    @property
    def window_label(self) -> str:
        """Return the window as radiologists write it, or "file window" when the file's own was used."""
        if self.window_center is None or self.window_width is None:
            return _('file window')
        center, width = format(self.window_center, 'g'), format(self.window_width, 'g')
        return _('window C {center} / W {width}', center=center, width=width)


@dataclass(frozen=True)
class RenderedKeyImage:
    """A key image rendered for the PDF: JPEG bytes and the key image, whose labels the PDF prints under it."""

    jpeg: bytes
    view: KeyImageView


def list_key_images(*, actor: Actor, examination_id: str) -> list[KeyImageView]:
    """Return the report's key images in the order they were added.

    The accepting doctor gets them while writing, and the patient and admins once the report is final.
    Anyone else gets NotFoundError, as for the examination itself.
    """
    with session_scope() as session:
        exam = get_visible_exam(session, actor, examination_id)
        report = session.scalar(select(Report).where(Report.examination_id == exam.id))
        if report is None:
            return []
        if actor.role == Role.DOCTOR and exam.doctor_id != actor.doctor_id:
            raise deny(session, actor, exam, 'key images of another doctor\'s report')
        if actor.role == Role.PATIENT and not report.is_final:
            return []
        return _views(session, report.id)


def add_key_image(*, actor: Actor, examination_id: str, series_id: int, slice_index: int,
                  window_center: float | None = None, window_width: float | None = None, caption: str = '') -> int:
    """Add a slice of the examination to the acting doctor's report and return the key image's id.

    Adding a slice that is already a key image replaces its window and caption. Raises ValidationError
    for a slice outside the series, an invalid window, a caption that is too long or a full report,
    NotFoundError for a series of another examination, and ConflictError once the report is final.
    """
    caption = (caption or '').strip()
    if len(caption) > CAPTION_LIMIT:
        raise ValidationError(N_('The caption must have at most {limit} characters; it has {length}.'),
                              field='caption', limit=CAPTION_LIMIT, length=len(caption))
    window = _checked_window(window_center, window_width)
    # The frame count comes from the stored files, so this also checks that the doctor may see the images.
    frame_count = _frame_count(actor, examination_id, series_id)
    if not 0 <= slice_index < frame_count:
        raise ValidationError(N_('Slice {number} does not exist: the series has {count} slices.'),
                              field='slice_index', number=slice_index + 1, count=frame_count)

    with session_scope() as session:
        exam = _own_case_under_review(session, actor, examination_id)
        report = session.scalar(select(Report).where(Report.examination_id == exam.id))
        if report is None:
            report = Report(examination_id=exam.id, doctor_id=actor.doctor_id)
            session.add(report)
            session.flush()
        # A no-op update locks the report row, so two requests at once cannot both add a fifth image.
        session.execute(update(Report).where(Report.id == report.id).values(doctor_id=Report.doctor_id))
        existing = session.scalar(select(ReportKeyImage).where(
            ReportKeyImage.report_id == report.id, ReportKeyImage.series_id == series_id,
            ReportKeyImage.slice_index == slice_index))
        if existing is None:
            count = session.scalar(select(func.count()).select_from(ReportKeyImage)
                                   .where(ReportKeyImage.report_id == report.id))
            if count >= MAX_KEY_IMAGES:
                raise ValidationError(N_('A report can have at most {limit} key images. Remove one in the '
                                         'report editor before adding another.'), field='key_images',
                                      limit=MAX_KEY_IMAGES)
            existing = ReportKeyImage(report_id=report.id, series_id=series_id, slice_index=slice_index)
            session.add(existing)
        existing.window_center, existing.window_width = window
        existing.caption = caption
        session.flush()
        audit.record(session, actor, 'report.key_image_added', 'examination', exam.id, key_image_id=existing.id,
                     series_id=series_id, slice_index=slice_index)
        key_image_id = existing.id
    logger.info('doctor %s added key image %s (series %s, slice %s) to examination %s', actor.doctor_id,
                key_image_id, series_id, slice_index, examination_id)
    return key_image_id


def remove_key_image(*, actor: Actor, examination_id: str, key_image_id: int) -> None:
    """Remove a key image from the acting doctor's report while it is not final."""
    with session_scope() as session:
        exam = _own_case_under_review(session, actor, examination_id)
        removed = session.execute(delete(ReportKeyImage).where(
            ReportKeyImage.id == key_image_id,
            ReportKeyImage.report_id.in_(select(Report.id).where(Report.examination_id == exam.id))))
        if removed.rowcount != 1:
            raise NotFoundError(N_('Key image'))
        audit.record(session, actor, 'report.key_image_removed', 'examination', exam.id, key_image_id=key_image_id)
    logger.info('doctor %s removed key image %s from examination %s', actor.doctor_id, key_image_id, examination_id)


def render_for_pdf(*, actor: Actor, examination_id: str) -> list[RenderedKeyImage]:
    """Render the report's key images as JPEG for the PDF, in the order they were added.

    Raises ValidationError naming the key image when its slice can no longer be rendered, so the doctor
    removes it instead of signing a report that silently lacks it.
    """
    rendered = []
    for number, item in enumerate(list_key_images(actor=actor, examination_id=examination_id), start=1):
        try:
            jpeg = viewer.render_slice(actor=actor, examination_id=examination_id, series_id=item.series_id,
                                       index=item.slice_index, window_center=item.window_center,
                                       window_width=item.window_width, max_size=PDF_IMAGE_SIZE,
                                       image_format='JPEG')
        except DomainError as exc:
            logger.warning('examination %s: key image %s cannot be rendered: %s', examination_id, item.id, exc)
            raise ValidationError(N_('Key image {number} ({place}) cannot be rendered: {reason} Remove it in the '
                                     'report editor and try again.'), field='key_images', number=number,
                                  place=item.position_label, reason=error_message(exc)) from exc
        rendered.append(RenderedKeyImage(jpeg=jpeg, view=item))
    return rendered


def _views(session, report_id: int) -> list[KeyImageView]:
    rows = session.execute(
        select(ReportKeyImage, Series.number, Series.description, Series.modality)
        .join(Series, Series.id == ReportKeyImage.series_id)
        .where(ReportKeyImage.report_id == report_id)
        .order_by(ReportKeyImage.added_at, ReportKeyImage.id)).all()
    return [KeyImageView(id=row.id, series_id=row.series_id, slice_index=row.slice_index,
                         window_center=row.window_center, window_width=row.window_width, caption=row.caption,
                         series_number=number, series_description=description or modality or '')
            for row, number, description, modality in rows]


def _own_case_under_review(session, actor: Actor, examination_id: str) -> Examination:
    require_role(actor, Role.DOCTOR)
    exam = get_visible_exam(session, actor, examination_id)
    if exam.doctor_id != actor.doctor_id:
        raise deny(session, actor, exam, 'not the accepting doctor')
    if exam.status != ExamStatus.UNDER_REVIEW:
        raise ConflictError(N_('The report of this case is final, so its key images can no longer change.'))
    return exam


def _frame_count(actor: Actor, examination_id: str, series_id: int) -> int:
    with session_scope() as session:
        belongs = session.scalar(select(Series.id).join(Study, Series.study_id == Study.id)
                                 .where(Series.id == series_id, Study.examination_id == examination_id))
    if belongs is None:
        raise NotFoundError('Series')
    for item in viewer.list_viewer_series(actor=actor, examination_id=examination_id):
        if item.id == series_id:
            return item.frame_count
    raise NotFoundError('Series')


def _checked_window(center: float | None, width: float | None) -> tuple[float | None, float | None]:
    if center is None and width is None:
        return None, None
    if center is None or width is None:
        raise ValidationError(N_('Give both the window center and the window width, or neither.'), field='window')
    if not (math.isfinite(center) and math.isfinite(width)) or width <= 0:
        raise ValidationError(N_('The window width must be a positive number, not {width}.'), field='window',
                              width=f'{width:g}')
    return float(center), float(width)
