"""Database models. Importing this package registers every table on `Base.metadata`."""

from .audit import AuditEvent
from .base import Base
from .billing import Income, IncomeKind, Payment, PaymentStatus, ProcessedEvent
from .examinations import (
    Comparison, ExamQuestion, Examination, ExamStatus, ImageLink, Report, ReportAddendum, ReportKeyImage, Series, Study,
    StudyFile, Urgency,
)
from .notifications import Notification, NotificationStatus
from .sharing import ShareLink
from .sessions import AccountToken, ExternalIdentity, TokenPurpose, UserSession
from .sign_in import SignInAttempt
from .standards import AppSetting, DicomNode, DicomTransfer, TransferStatus
from .users import Doctor, Patient, Role, User

__all__ = [
    'AppSetting', 'DicomNode', 'DicomTransfer', 'TransferStatus', 'AccountToken', 'AuditEvent', 'ExternalIdentity', 'TokenPurpose', 'UserSession', 'Base', 'Comparison', 'Doctor', 'ExamQuestion', 'ExamStatus', 'Examination', 'ImageLink', 'Income', 'IncomeKind',
    'Notification', 'NotificationStatus', 'Patient', 'Payment', 'PaymentStatus', 'ProcessedEvent', 'Report', 'ReportAddendum',
    'ReportKeyImage',    'Role', 'Series', 'ShareLink', 'SignInAttempt', 'Study', 'StudyFile', 'Urgency', 'User',
]
