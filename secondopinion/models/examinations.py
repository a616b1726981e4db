"""Examinations and what belongs to them: uploaded studies, image links and the report."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import BigInteger, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from .base import Base, new_id, utcnow


class ExamStatus(StrEnum):
    DRAFT = 'draft'
    AWAITING_PAYMENT = 'awaiting_payment'
    PENDING = 'pending'
    UNDER_REVIEW = 'under_review'
    REPORTED = 'reported'
    COMPLETED = 'completed'
    CANCELLED = 'cancelled'


class Urgency(StrEnum):
    ROUTINE = 'routine'
    URGENT = 'urgent'


class Examination(Base):
    __tablename__ = 'examinations'

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    patient_id: Mapped[int] = mapped_column(ForeignKey('patients.id'), index=True)
    doctor_id: Mapped[int | None] = mapped_column(ForeignKey('doctors.id'), index=True)
    status: Mapped[str] = mapped_column(String(24), index=True, default=ExamStatus.DRAFT)

    modality: Mapped[str] = mapped_column(String(16), default='')
    body_part: Mapped[str] = mapped_column(String(120), default='')
    clinical_question: Mapped[str] = mapped_column(Text, default='')
    history: Mapped[str] = mapped_column(Text, default='')
    urgency: Mapped[str] = mapped_column(String(16), default=Urgency.ROUTINE)
    prior_report_text: Mapped[str] = mapped_column(Text, default='')

    price_cents: Mapped[int | None] = mapped_column(Integer)
    currency: Mapped[str | None] = mapped_column(String(3))

    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    submitted_at: Mapped[datetime | None]
    paid_at: Mapped[datetime | None]
    # When the report is promised: the payment time plus the turnaround of the urgency, fixed at payment.
    due_at: Mapped[datetime | None] = mapped_column(index=True)
    accepted_at: Mapped[datetime | None]
    reported_at: Mapped[datetime | None]
    completed_at: Mapped[datetime | None]
    cancelled_at: Mapped[datetime | None]
    # Whether doctors see de-identified images: None follows the app-wide setting.
    deidentify: Mapped[bool | None]

    studies: Mapped[list[Study]] = relationship(back_populates='examination', order_by='Study.id')
    links: Mapped[list[ImageLink]] = relationship(order_by='ImageLink.id')


class Study(Base):
    """One DICOM study (one StudyInstanceUID) uploaded for an examination."""

    __tablename__ = 'studies'
    __table_args__ = (UniqueConstraint('examination_id', 'study_instance_uid'),)

    id: Mapped[int] = mapped_column(primary_key=True)
    examination_id: Mapped[str] = mapped_column(ForeignKey('examinations.id'), index=True)
    study_instance_uid: Mapped[str] = mapped_column(String(64))
    study_date: Mapped[str] = mapped_column(String(8), default='')
    description: Mapped[str] = mapped_column(String(200), default='')
    modality: Mapped[str] = mapped_column(String(16), default='')
    # From the first file of the study that has them, see services.dicom.DicomInfo.
    patient_name: Mapped[str] = mapped_column(String(200), default='', server_default='')
    patient_sex: Mapped[str] = mapped_column(String(16), default='', server_default='')
    patient_age: Mapped[str] = mapped_column(String(16), default='', server_default='')  # an Age String, e.g. 045Y

    examination: Mapped[Examination] = relationship(back_populates='studies')
    series: Mapped[list[Series]] = relationship(back_populates='study', order_by='Series.number')


class Series(Base):
    __tablename__ = 'series'
    __table_args__ = (UniqueConstraint('study_id', 'series_instance_uid'),)

    id: Mapped[int] = mapped_column(primary_key=True)
    study_id: Mapped[int] = mapped_column(ForeignKey('studies.id'), index=True)
    series_instance_uid: Mapped[str] = mapped_column(String(64))
    number: Mapped[int | None]
    modality: Mapped[str] = mapped_column(String(16), default='')
    description: Mapped[str] = mapped_column(String(200), default='')
    body_part: Mapped[str] = mapped_column(String(64), default='', server_default='')  # Body Part Examined
    thumbnail_key: Mapped[str | None] = mapped_column(String(300))

    study: Mapped[Study] = relationship(back_populates='series')
    files: Mapped[list[StudyFile]] = relationship(back_populates='series', order_by='StudyFile.instance_number')


class StudyFile(Base):
    """One stored file: a DICOM instance (with a series) or the first radiologist's report (without)."""

    __tablename__ = 'study_files'
    # Prior report rows have no SOP Instance UID; NULLs never collide in this constraint.
    __table_args__ = (UniqueConstraint('examination_id', 'sop_instance_uid'),)

    id: Mapped[int] = mapped_column(primary_key=True)
    examination_id: Mapped[str] = mapped_column(ForeignKey('examinations.id'), index=True)
    series_id: Mapped[int | None] = mapped_column(ForeignKey('series.id'), index=True)
    kind: Mapped[str] = mapped_column(String(16), default='dicom')
    original_name: Mapped[str] = mapped_column(String(255))
    storage_key: Mapped[str] = mapped_column(String(300), unique=True)
    content_type: Mapped[str] = mapped_column(String(100), default='application/dicom')
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    sha256: Mapped[str] = mapped_column(String(64))
    sop_instance_uid: Mapped[str | None] = mapped_column(String(64))
    instance_number: Mapped[int | None]
    uploaded_at: Mapped[datetime] = mapped_column(default=utcnow)

    series: Mapped[Series | None] = relationship(back_populates='files')


class ImageLink(Base):
    """A link to images stored elsewhere (a hospital portal or a cloud share)."""

    __tablename__ = 'image_links'

    id: Mapped[int] = mapped_column(primary_key=True)
    examination_id: Mapped[str] = mapped_column(ForeignKey('examinations.id'), index=True)
    url: Mapped[str] = mapped_column(String(2000))
    note: Mapped[str] = mapped_column(String(500), default='')


class Comparison(StrEnum):
    """Relation of the second opinion to the first radiologist's report that the patient uploaded."""

    NONE = ''
    AGREES = 'agrees'
    PARTLY = 'partly_agrees'
    DISAGREES = 'disagrees'


class Report(Base):
    __tablename__ = 'reports'

    id: Mapped[int] = mapped_column(primary_key=True)
    examination_id: Mapped[str] = mapped_column(ForeignKey('examinations.id'), unique=True)
    doctor_id: Mapped[int] = mapped_column(ForeignKey('doctors.id'))
    technique: Mapped[str] = mapped_column(Text, default='', server_default='')
    comparison: Mapped[str] = mapped_column(String(16), default=Comparison.NONE, server_default='')
    comparison_note: Mapped[str] = mapped_column(Text, default='', server_default='')
    findings: Mapped[str] = mapped_column(Text, default='')
    impression: Mapped[str] = mapped_column(Text, default='')
    recommendations: Mapped[str] = mapped_column(Text, default='')
    is_final: Mapped[bool] = mapped_column(default=False)
    pdf_key: Mapped[str | None] = mapped_column(String(300))
    pdf_sha256: Mapped[str | None] = mapped_column(String(64))
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    finalized_at: Mapped[datetime | None]


class ReportAddendum(Base):
    """A correction or addition to a finalized report: a new version with its own PDF; earlier ones are kept."""

    __tablename__ = 'report_addenda'
    __table_args__ = (UniqueConstraint('report_id', 'number', name='uq_report_addenda_number'),)

    id: Mapped[int] = mapped_column(primary_key=True)
    report_id: Mapped[int] = mapped_column(ForeignKey('reports.id'), index=True)
    number: Mapped[int] = mapped_column(Integer)  # 1 for the first addendum, which makes version 2
    doctor_id: Mapped[int] = mapped_column(ForeignKey('doctors.id'))
    text: Mapped[str] = mapped_column(Text)
    signed_at: Mapped[datetime] = mapped_column(default=utcnow)
    pdf_key: Mapped[str] = mapped_column(String(300))
    pdf_sha256: Mapped[str] = mapped_column(String(64))


class ReportKeyImage(Base):
    """A slice the doctor picked for the report, printed in the PDF with the window it was read at."""

    __tablename__ = 'report_key_images'
    __table_args__ = (UniqueConstraint('report_id', 'series_id', 'slice_index', name='uq_report_key_images_slice'),)

    id: Mapped[int] = mapped_column(primary_key=True)
    report_id: Mapped[int] = mapped_column(ForeignKey('reports.id'), index=True)
    series_id: Mapped[int] = mapped_column(ForeignKey('series.id'))
    # Position in the series' slices as the viewer counts them: the frames of its instances in
    # instance-number order, starting at 0.
    slice_index: Mapped[int] = mapped_column(Integer)
    # The window the doctor saw; both None means the file's own window.
    window_center: Mapped[float | None]
    window_width: Mapped[float | None]
    caption: Mapped[str] = mapped_column(String(200), default='')
    added_at: Mapped[datetime] = mapped_column(default=utcnow)


class ExamQuestion(Base):
    """A follow-up question of the patient about a reported examination, and the doctor's answer."""

    __tablename__ = 'examination_questions'

    id: Mapped[int] = mapped_column(primary_key=True)
    examination_id: Mapped[str] = mapped_column(ForeignKey('examinations.id'), index=True)
    question: Mapped[str] = mapped_column(Text)
    asked_at: Mapped[datetime] = mapped_column(default=utcnow)
    answer: Mapped[str | None] = mapped_column(Text)
    answered_by_doctor_id: Mapped[int | None] = mapped_column(ForeignKey('doctors.id'))
    answered_at: Mapped[datetime | None]
