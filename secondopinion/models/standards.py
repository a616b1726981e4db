"""Review and exchange settings: app-wide switches, DICOM nodes, and studies sent to them."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import Boolean, ForeignKey, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from .base import Base, utcnow


class AppSetting(Base):
    """One app-wide switch that admins change at run time, such as de-identified review for doctors."""

    __tablename__ = 'app_settings'

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(String(200))
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_by_user_id: Mapped[int | None] = mapped_column(ForeignKey('users.id'))


class DicomNode(Base):
    """A DICOM storage SCP (a PACS or viewer) that studies can be sent to with C-STORE."""

    __tablename__ = 'dicom_nodes'

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    ae_title: Mapped[str] = mapped_column(String(16))  # the called AE title of the remote node
    host: Mapped[str] = mapped_column(String(255))
    port: Mapped[int] = mapped_column(Integer)
    calling_ae_title: Mapped[str] = mapped_column(String(16))  # this app's AE title towards the node
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class TransferStatus(StrEnum):
    QUEUED = 'queued'
    RUNNING = 'running'
    SUCCEEDED = 'succeeded'
    FAILED = 'failed'


class DicomTransfer(Base):
    """One sending of an examination's study (and its report) to a DICOM node."""

    __tablename__ = 'dicom_transfers'

    id: Mapped[int] = mapped_column(primary_key=True)
    examination_id: Mapped[str] = mapped_column(ForeignKey('examinations.id'), index=True)
    node_id: Mapped[int] = mapped_column(ForeignKey('dicom_nodes.id'), index=True)
    requested_by_user_id: Mapped[int | None] = mapped_column(ForeignKey('users.id'))
    status: Mapped[str] = mapped_column(String(16), default=TransferStatus.QUEUED)
    files_total: Mapped[int] = mapped_column(Integer, default=0)
    files_sent: Mapped[int] = mapped_column(Integer, default=0)
    files_failed: Mapped[int] = mapped_column(Integer, default=0)
    error: Mapped[str] = mapped_column(Text, default='')
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]
