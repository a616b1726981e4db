"""Sending an examination's study and its report to a DICOM node with C-STORE, in a worker thread.

Each sending is a `dicom_transfers` row that moves from queued to running to succeeded or failed,
with the count of files sent and failed and a message for the admin when it failed. Files are
read from storage one at a time and sent as stored (the originals, never de-identified copies).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta

import pydicom
from pydicom.dataset import Dataset
from pydicom.uid import UID, ExplicitVRLittleEndian, ImplicitVRLittleEndian
from pynetdicom import AE
from sqlalchemy import func, or_, select, update

from ..config import get_settings
from ..db import session_scope
from ..models import DicomNode, DicomTransfer, Examination, Report, Role, Series, Study, StudyFile, TransferStatus
from ..models.base import utcnow
from . import audit
from .actors import Actor, require_role
from .errors import ConflictError, NotFoundError
from .standards import encapsulated_pdf, load_export
from .storage import get_storage

logger = logging.getLogger(__name__)

# PS3.8: an association offers at most 128 presentation contexts (odd ids 1 to 255).
MAX_CONTEXTS = 128
# C-STORE statuses that mean the node stored the object: success, and the warnings of PS3.4 B.2.3
# (coercion of data elements, elements discarded, data set does not match the SOP class).
STORED_STATUSES = {0x0000, 0xB000, 0xB006, 0xB007}
PROGRESS_EVERY = 20  # files between two updates of the transfer row
CONNECTION_TIMEOUT_SECONDS = 10
ACSE_TIMEOUT_SECONDS = 30
DIMSE_TIMEOUT_SECONDS = 120
# A transfer stops itself once it ran `dicom_transfer_timeout_minutes`, but it may still wait for
# the connection, the association and one C-STORE response (160 s at most with the timeouts above).
# A queued or running row older than the timeout plus this margin therefore has no live worker on
# any instance: its server stopped mid-way, and `fail_interrupted_transfers` marks it failed.
INTERRUPTED_MARGIN = timedelta(minutes=5)
INTERRUPTED_ERROR = 'interrupted: the server stopped while sending; send again'

# Ids of the transfers whose worker thread runs in this process.
_active: set[int] = set()
_active_lock = threading.Lock()


@dataclass(frozen=True)
class TransferView:
    id: int
    examination_id: str
    node_id: int
    node_name: str
    status: str
    files_total: int
    files_sent: int
    files_failed: int
    error: str
    created_at: datetime
    finished_at: datetime | None

    @property
    def finished(self) -> bool:
        return self.status in (TransferStatus.SUCCEEDED, TransferStatus.FAILED)


class TransferFailedError(Exception):
    """The whole transfer failed; the message is written for the admin and stored on the row."""


def send_study(*, actor: Actor, examination_id: str, node_id: int) -> int:
    """Queue the examination's images (and its final report, if any) for the node and start sending them.

    Returns the transfer id at once; the sending runs in a worker thread that updates the row.
    """
    require_role(actor, Role.ADMIN)
    with session_scope() as session:
        exam = session.get(Examination, examination_id)
        if exam is None:
            raise NotFoundError('Examination')
        node = session.get(DicomNode, node_id)
        if node is None:
            raise NotFoundError('DICOM node')
        if not node.enabled:
            raise ConflictError(f'The DICOM node "{node.name}" is disabled: enable it before sending to it.')
        files = session.scalar(select(StudyFile.id).where(StudyFile.examination_id == exam.id,
                                                          StudyFile.kind == 'dicom').limit(1))
        has_report = session.scalar(select(Report.id).where(Report.examination_id == exam.id,
                                                            Report.is_final.is_(True)))
        if files is None and has_report is None:
            raise ConflictError('This examination has no DICOM images and no final report, so there is nothing '
                                'to send.')
        transfer = DicomTransfer(examination_id=exam.id, node_id=node.id, requested_by_user_id=actor.user_id,
                                 status=TransferStatus.QUEUED)
        session.add(transfer)
        session.flush()
        transfer_id = transfer.id
        audit.record(session, actor, 'study.send_requested', 'examination', exam.id, node_id=node.id,
                     transfer_id=transfer_id)
    logger.info('transfer %s queued: examination %s to DICOM node %s by user %s', transfer_id, examination_id,
                node_id, actor.user_id)
    # A transfer whose server process stops mid-way stays "running" until fail_interrupted_transfers
    # marks it failed, and the admin then sends it again.
    threading.Thread(target=run_transfer, args=(transfer_id,), name=f'dicom-send-{transfer_id}',
                     daemon=True).start()
    return transfer_id


def resend(*, actor: Actor, transfer_id: int) -> int:
    """Send the study of a failed transfer again to the same node, as a new transfer, and return its id."""
    require_role(actor, Role.ADMIN)
    with session_scope() as session:
        transfer = session.get(DicomTransfer, transfer_id)
        if transfer is None:
            raise NotFoundError('Transfer')
        if transfer.status != TransferStatus.FAILED:
            raise ConflictError(f'Transfer {transfer_id} is {transfer.status}: only a failed transfer can be sent '
                                'again.')
        examination_id, node_id = transfer.examination_id, transfer.node_id
    logger.info('transfer %s sent again by user %s', transfer_id, actor.user_id)
    return send_study(actor=actor, examination_id=examination_id, node_id=node_id)


def fail_interrupted_transfers(now: datetime | None = None) -> int:
    """Mark failed the queued and running transfers that no worker can still be sending, and return how many.

    A transfer counts as interrupted when it is older than `dicom_transfer_timeout_minutes` plus
    INTERRUPTED_MARGIN (from its start, or from its creation while queued) and this process does not run
    it. A worker stops itself at the timeout, so no instance is still sending such a transfer.
    """
    now = now or utcnow()
    cutoff = now - timedelta(minutes=get_settings().dicom_transfer_timeout_minutes) - INTERRUPTED_MARGIN
    with _active_lock:
        active = set(_active)
    with session_scope() as session:
        ids = list(session.scalars(
            select(DicomTransfer.id).where(
                DicomTransfer.status.in_([TransferStatus.QUEUED, TransferStatus.RUNNING]),
                func.coalesce(DicomTransfer.started_at, DicomTransfer.created_at) < cutoff)))
        ids = [transfer_id for transfer_id in ids if transfer_id not in active]
        if not ids:
            return 0
        # The status condition is repeated, so a worker that finished since the select keeps its outcome.
        session.execute(
            update(DicomTransfer)
            .where(DicomTransfer.id.in_(ids),
                   or_(DicomTransfer.status == TransferStatus.QUEUED, DicomTransfer.status == TransferStatus.RUNNING))
            .values(status=TransferStatus.FAILED, error=INTERRUPTED_ERROR, finished_at=now))
    for transfer_id in ids:
        logger.warning('transfer %s marked failed: its server stopped while sending', transfer_id)
    return len(ids)


def list_transfers(*, actor: Actor, examination_id: str | None = None, limit: int = 50) -> list[TransferView]:
    require_role(actor, Role.ADMIN)
    with session_scope() as session:
        query = (select(DicomTransfer, DicomNode.name).join(DicomNode, DicomTransfer.node_id == DicomNode.id)
                 .order_by(DicomTransfer.id.desc()).limit(limit))
        if examination_id is not None:
            query = query.where(DicomTransfer.examination_id == examination_id)
        return [_view(transfer, name) for transfer, name in session.execute(query)]


def get_transfer(*, actor: Actor, transfer_id: int) -> TransferView:
    require_role(actor, Role.ADMIN)
    with session_scope() as session:
        row = session.execute(select(DicomTransfer, DicomNode.name)
                              .join(DicomNode, DicomTransfer.node_id == DicomNode.id)
                              .where(DicomTransfer.id == transfer_id)).first()
        if row is None:
            raise NotFoundError('Transfer')
        return _view(*row)


def _view(transfer: DicomTransfer, node_name: str) -> TransferView:
    return TransferView(id=transfer.id, examination_id=transfer.examination_id, node_id=transfer.node_id,
                        node_name=node_name, status=transfer.status, files_total=transfer.files_total,
                        files_sent=transfer.files_sent, files_failed=transfer.files_failed, error=transfer.error,
                        created_at=transfer.created_at, finished_at=transfer.finished_at)


# --- The worker --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Node:
    id: int
    ae_title: str
    host: str
    port: int
    calling_ae_title: str


def run_transfer(transfer_id: int) -> None:
    """Send one queued transfer and record its outcome. Failures are recorded on the row and logged, not raised."""
    with _active_lock:
        _active.add(transfer_id)
    try:
        _run_transfer(transfer_id)
    finally:
        with _active_lock:
            _active.discard(transfer_id)


def _run_transfer(transfer_id: int) -> None:
    try:
        node, examination_id, keys, report = _start(transfer_id)
    except Exception:  # noqa: BLE001 - the row must leave "queued" whatever went wrong
        logger.exception('transfer %s could not start', transfer_id)
        _finish(transfer_id, sent=0, failed=0, error='The transfer could not start because of an internal error.')
        return
    logger.info('transfer %s started: examination %s, %d files and %s report to DICOM node %s', transfer_id,
                examination_id, len(keys), 'a' if report is not None else 'no', node.id)
    sent = failed = 0
    error = ''
    try:
        sent, failed, error = _send(transfer_id, node, keys, report, deadline=_deadline())
    except TransferFailedError as problem:
        error = str(problem)
        logger.error('transfer %s to DICOM node %s failed: %s', transfer_id, node.id, error)
    except Exception as problem:  # noqa: BLE001 - network and decoding errors of many types
        error = f'The transfer stopped because of an unexpected error ({type(problem).__name__}).'
        logger.exception('transfer %s to DICOM node %s stopped', transfer_id, node.id)
    _finish(transfer_id, sent=sent, failed=failed, error=error)
    logger.info('transfer %s ended: %d sent, %d failed', transfer_id, sent, failed)


def _deadline() -> float:
    """Return the time.monotonic() value at which a transfer starting now stops sending."""
    return time.monotonic() + get_settings().dicom_transfer_timeout_minutes * 60


def _start(transfer_id: int) -> tuple[_Node, str, list[str], Dataset | None]:
    """Mark the transfer running and return the node, the image keys and the report object to send."""
    with session_scope() as session:
        transfer = session.get(DicomTransfer, transfer_id)
        if transfer is None:
            raise NotFoundError('Transfer')
        node_row = session.get(DicomNode, transfer.node_id)
        exam = session.get(Examination, transfer.examination_id)
        assert node_row is not None and exam is not None
        node = _Node(id=node_row.id, ae_title=node_row.ae_title, host=node_row.host, port=node_row.port,
                     calling_ae_title=node_row.calling_ae_title)
        keys = list(session.scalars(
            select(StudyFile.storage_key)
            .join(Series, StudyFile.series_id == Series.id)
            .join(Study, Series.study_id == Study.id)
            .where(StudyFile.examination_id == exam.id, StudyFile.kind == 'dicom')
            .order_by(Study.id, Series.number, StudyFile.instance_number, StudyFile.id)))
        report = None
        try:
            report = encapsulated_pdf(load_export(session, exam))
        except NotFoundError:
            pass  # no final report yet: only the images are sent
        transfer.status = TransferStatus.RUNNING
        transfer.started_at = utcnow()
        transfer.files_total = len(keys) + (1 if report is not None else 0)
        return node, exam.id, keys, report


def _send(transfer_id: int, node: _Node, keys: list[str], report: Dataset | None, *,
          deadline: float) -> tuple[int, int, str]:
    """Open one association, send every file and the report, and return (sent, failed, error message).

    Raises TransferFailedError when `deadline` (a time.monotonic() value) passes before the last file.
    """
    contexts = _contexts(keys, report)
    if len(contexts) > MAX_CONTEXTS:
        raise TransferFailedError(f'The study needs {len(contexts)} combinations of SOP class and transfer syntax, '
                                  f'more than the {MAX_CONTEXTS} one association can offer.')
    ae = AE(ae_title=node.calling_ae_title)
    ae.connection_timeout = CONNECTION_TIMEOUT_SECONDS
    ae.acse_timeout = ACSE_TIMEOUT_SECONDS
    ae.dimse_timeout = DIMSE_TIMEOUT_SECONDS
    for sop_class, syntaxes in contexts.items():
        ae.add_requested_context(sop_class, syntaxes)

    association = ae.associate(node.host, node.port, ae_title=node.ae_title)
    if association.is_rejected:
        raise TransferFailedError(f'The node {node.ae_title} at {node.host}:{node.port} rejected the association. '
                                  f'Check that its AE title is "{node.ae_title}" and that it accepts the calling AE '
                                  f'title "{node.calling_ae_title}".')
    if not association.is_established:
        raise TransferFailedError(f'No DICOM association with {node.host}:{node.port}: the node did not respond or '
                                  'aborted. Check the host, the port and that the node is running.')
    sent = failed = 0
    last_problem = ''
    try:
        for index, dataset in enumerate(_datasets(keys, report), start=1):
            if time.monotonic() > deadline:
                minutes = get_settings().dicom_transfer_timeout_minutes
                raise TransferFailedError(f'The transfer timed out after {minutes} minutes with {sent} of '
                                          f'{len(keys) + (report is not None)} files sent. Send again, or raise '
                                          'SECONDOPINION_DICOM_TRANSFER_TIMEOUT_MINUTES for large studies.')
            problem = _store(association, dataset)
            if problem:
                failed += 1
                last_problem = problem
                logger.warning('transfer %s: file %d of %d not stored: %s', transfer_id, index,
                               len(keys) + (report is not None), problem)
            else:
                sent += 1
            if index % PROGRESS_EVERY == 0:
                _progress(transfer_id, sent, failed)
            if not association.is_established:
                raise TransferFailedError(f'The node ended the association after {sent} files.')
    finally:
        if association.is_established:
            association.release()
    error = f'{failed} files were not stored; the last problem: {last_problem}' if failed else ''
    return sent, failed, error


def _contexts(keys: list[str], report: Dataset | None) -> dict[str, list[str]]:
    """Return the transfer syntaxes to offer per SOP class, from each file's own."""
    contexts: dict[str, set[str]] = {}
    storage = get_storage()
    for key in keys:
        with storage.open(key) as file:
            header = pydicom.dcmread(file, stop_before_pixels=True, force=True, specific_tags=['SOPClassUID'])
        syntax = UID(str(getattr(getattr(header, 'file_meta', None), 'TransferSyntaxUID', '') or ImplicitVRLittleEndian))
        syntaxes = contexts.setdefault(str(header.SOPClassUID), set())
        syntaxes.add(syntax)
        if not syntax.is_compressed:
            # pynetdicom re-encodes an uncompressed data set for whichever of these the node accepts.
            syntaxes.update((ExplicitVRLittleEndian, ImplicitVRLittleEndian))
    if report is not None:
        contexts.setdefault(str(report.SOPClassUID), set()).update((ExplicitVRLittleEndian, ImplicitVRLittleEndian))
    return {sop_class: sorted(syntaxes) for sop_class, syntaxes in contexts.items()}


def _datasets(keys: list[str], report: Dataset | None) -> Iterator[Dataset]:
    storage = get_storage()
    for key in keys:
        with storage.open(key) as file:
            yield pydicom.dcmread(file, force=True)
    if report is not None:
        yield report


def _store(association, dataset: Dataset) -> str:  # noqa: ANN001 (a pynetdicom Association)
    """Send one data set and return '' when the node stored it, else what went wrong."""
    try:
        status = association.send_c_store(dataset)
    except ValueError as error:
        # pynetdicom raises ValueError when no accepted presentation context fits the data set.
        return f'the node accepted no presentation context for SOP class {dataset.get("SOPClassUID", "?")} ({error})'
    if not status or 'Status' not in status:
        return 'no response from the node (timeout or aborted association)'
    if int(status.Status) not in STORED_STATUSES:
        comment = status.get('ErrorComment', '')
        return f'status 0x{int(status.Status):04X}{": " + str(comment) if comment else ""}'
    return ''


def _progress(transfer_id: int, sent: int, failed: int) -> None:
    with session_scope() as session:
        transfer = session.get(DicomTransfer, transfer_id)
        if transfer is not None:
            transfer.files_sent = sent
            transfer.files_failed = failed


def _finish(transfer_id: int, *, sent: int, failed: int, error: str) -> None:
    try:
        with session_scope() as session:
            transfer = session.get(DicomTransfer, transfer_id)
            if transfer is None:
                return
            transfer.files_sent = sent
            transfer.files_failed = failed
            transfer.error = error
            transfer.status = TransferStatus.FAILED if error else TransferStatus.SUCCEEDED
            transfer.finished_at = utcnow()
    except Exception:  # noqa: BLE001 - logged; the row then stays "running" until an admin sends again
        logger.exception('transfer %s: the outcome could not be recorded', transfer_id)
