"""Sending a study with C-STORE to pynetdicom's storage SCP on 127.0.0.1, and the DICOM node rules."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

import pydicom
import pytest
from pydicom.data import get_testdata_file
from pydicom.dataset import Dataset
from pynetdicom import ALL_TRANSFER_SYNTAXES, AE, DEFAULT_TRANSFER_SYNTAXES, AllStoragePresentationContexts, evt
from sqlalchemy import select

from secondopinion.config import get_settings, reset_settings
from secondopinion.db import session_scope
from secondopinion.models import AuditEvent, DicomTransfer, TransferStatus
from secondopinion.models.base import utcnow
from secondopinion.services import (dicom_nodes, dicom_send, examinations, payments, reports, scheduler, standards,
                                    studies)
from secondopinion.services.errors import ConflictError, NotFoundError, PermissionDeniedError, ValidationError

FILES = ['CT_small.dcm', 'MR_small.dcm', 'JPEG2000.dcm']
SCP_AE_TITLE = 'TESTSCP'
REPORT = {'findings': 'Solid nodule, 6 mm.', 'impression': 'Probably benign.', 'recommendations': ''}


@dataclass
class StorageScp:
    """pynetdicom's storage SCP on a free loopback port, keeping what it receives."""

    port: int
    received: list[Dataset] = field(default_factory=list)


@pytest.fixture
def storage_scp(request) -> Iterator[StorageScp]:
    """The SCP accepts every transfer syntax, or only the uncompressed ones with `uncompressed_only` as parameter."""
    scp = StorageScp(port=0)
    uncompressed_only = getattr(request, 'param', '') == 'uncompressed_only'

    def store(event: evt.Event) -> int:
        dataset = event.dataset
        dataset.file_meta = event.file_meta
        scp.received.append(dataset)
        return 0x0000

    ae = AE(ae_title=SCP_AE_TITLE)
    for context in AllStoragePresentationContexts:
        ae.add_supported_context(context.abstract_syntax,
                                 DEFAULT_TRANSFER_SYNTAXES if uncompressed_only else ALL_TRANSFER_SYNTAXES)
    ae.require_called_aet = True
    server = ae.start_server(('127.0.0.1', 0), block=False, evt_handlers=[(evt.EVT_C_STORE, store)])
    scp.port = server.server_address[1]
    yield scp
    server.shutdown()


@pytest.fixture
def patient(make_patient):
    return make_patient()


@pytest.fixture
def reported_exam(patient, make_doctor) -> str:
    doctor = make_doctor()
    exam_id = examinations.create_draft(actor=patient)
    examinations.update_details(actor=patient, examination_id=exam_id, modality='CT', body_part='Chest',
                                clinical_question='Is it benign?')
    studies.add_files(actor=patient, examination_id=exam_id,
                      files=[(name, Path(get_testdata_file(name))) for name in FILES])
    examinations.submit(actor=patient, examination_id=exam_id)
    url = payments.start_checkout(actor=patient, examination_id=exam_id)
    payments.complete_test_checkout(actor=patient, provider_ref=url.rsplit('/', 1)[1])
    examinations.accept(actor=doctor, examination_id=exam_id)
    reports.finalize(actor=doctor, examination_id=exam_id, **REPORT)
    return exam_id


def _wait(admin, transfer_id: int, timeout: float = 60.0) -> dicom_send.TransferView:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        transfer = dicom_send.get_transfer(actor=admin, transfer_id=transfer_id)
        if transfer.finished:
            return transfer
        time.sleep(0.1)
    raise AssertionError(f'transfer {transfer_id} did not finish within {timeout} s')


def _node(admin, port: int, ae_title: str = SCP_AE_TITLE, name: str = 'Test PACS') -> int:
    return dicom_nodes.save_node(actor=admin, name=name, ae_title=ae_title, host='127.0.0.1', port=port)


def test_study_and_report_arrive(admin, patient, reported_exam, storage_scp):
    node_id = _node(admin, storage_scp.port)

    transfer = _wait(admin, dicom_send.send_study(actor=admin, examination_id=reported_exam, node_id=node_id))

    assert transfer.status == TransferStatus.SUCCEEDED, transfer.error
    assert (transfer.files_total, transfer.files_sent, transfer.files_failed) == (4, 4, 0)
    originals = {str(pydicom.dcmread(get_testdata_file(name)).SOPInstanceUID): pydicom.dcmread(get_testdata_file(name))
                 for name in FILES}
    by_uid = {str(dataset.SOPInstanceUID): dataset for dataset in storage_scp.received}
    for uid, original in originals.items():
        received = by_uid[uid]
        assert received.PatientName == original.PatientName
        assert received.StudyInstanceUID == original.StudyInstanceUID
        assert received.PixelData == original.PixelData
    reports_received = [dataset for dataset in storage_scp.received
                        if dataset.SOPClassUID == standards.ENCAPSULATED_PDF_STORAGE]
    assert len(reports_received) == 1
    _name, chunks = reports.open_report_pdf(actor=patient, examination_id=reported_exam)
    assert standards.pdf_from_dataset(reports_received[0]) == b''.join(chunks)


@pytest.mark.parametrize('storage_scp', ['uncompressed_only'], indirect=True)
def test_unaccepted_syntax_counted_as_failed(admin, reported_exam, storage_scp):
    node_id = _node(admin, storage_scp.port)

    transfer = _wait(admin, dicom_send.send_study(actor=admin, examination_id=reported_exam, node_id=node_id))

    assert transfer.status == TransferStatus.FAILED
    assert (transfer.files_sent, transfer.files_failed) == (3, 1)
    assert 'JPEG 2000' in transfer.error
    assert len(storage_scp.received) == 3


def test_wrong_called_ae_title_fails(admin, reported_exam, storage_scp):
    node_id = _node(admin, storage_scp.port, ae_title='WRONGAE')

    transfer = _wait(admin, dicom_send.send_study(actor=admin, examination_id=reported_exam, node_id=node_id))

    assert transfer.status == TransferStatus.FAILED
    assert 'rejected the association' in transfer.error
    assert 'WRONGAE' in transfer.error
    assert transfer.files_sent == 0
    assert storage_scp.received == []


def test_closed_port_fails(admin, reported_exam):
    # Nothing listens on loopback port 1 (tcpmux) on the test machines, so the connection is refused.
    node_id = _node(admin, 1)

    transfer = _wait(admin, dicom_send.send_study(actor=admin, examination_id=reported_exam, node_id=node_id))

    assert transfer.status == TransferStatus.FAILED
    assert 'No DICOM association' in transfer.error


def test_patient_and_doctor_cannot_send(admin, patient, make_doctor, reported_exam, storage_scp):
    node_id = _node(admin, storage_scp.port)
    for actor in (patient, make_doctor('Dr. Other')):
        with pytest.raises(PermissionDeniedError):
            dicom_send.send_study(actor=actor, examination_id=reported_exam, node_id=node_id)
        with pytest.raises(PermissionDeniedError):
            dicom_nodes.save_node(actor=actor, name='Mine', ae_title='X', host='127.0.0.1', port=104)
    assert storage_scp.received == []


def test_send_is_audited(admin, reported_exam, storage_scp):
    node_id = _node(admin, storage_scp.port)
    _wait(admin, dicom_send.send_study(actor=admin, examination_id=reported_exam, node_id=node_id))

    with session_scope() as session:
        actions = set(session.scalars(select(AuditEvent.action)))
    assert {'dicom_node.created', 'study.send_requested'} <= actions


def test_disabled_node_refused(admin, reported_exam, storage_scp):
    node_id = _node(admin, storage_scp.port)
    dicom_nodes.set_node_enabled(actor=admin, node_id=node_id, enabled=False)

    with pytest.raises(ConflictError):
        dicom_send.send_study(actor=admin, examination_id=reported_exam, node_id=node_id)
    assert dicom_nodes.list_nodes(actor=admin, enabled_only=True) == []


def test_missing_node_and_exam(admin, reported_exam):
    with pytest.raises(NotFoundError):
        dicom_send.send_study(actor=admin, examination_id=reported_exam, node_id=999)
    with pytest.raises(NotFoundError):
        dicom_send.send_study(actor=admin, examination_id='f' * 32, node_id=1)


@pytest.mark.parametrize(('field_name', 'values'), [
    ('ae_title', {'ae_title': 'A' * 17}), ('ae_title', {'ae_title': 'BACK\\SLASH'}), ('ae_title', {'ae_title': ' '}),
    ('port', {'port': '0'}), ('port', {'port': 'http'}), ('port', {'port': 70000}),
    ('host', {'host': 'pacs example'}), ('name', {'name': ''})])
def test_node_fields_checked(admin, field_name, values):
    fields = {'name': 'PACS', 'ae_title': 'PACS', 'host': 'pacs.example.org', 'port': 104, **values}

    with pytest.raises(ValidationError) as raised:
        dicom_nodes.save_node(actor=admin, **fields)
    assert raised.value.field == field_name


def test_node_names_unique(admin):
    _node(admin, 104)

    with pytest.raises(ConflictError):
        _node(admin, 105)


# --- Interrupted and timed-out transfers, sending again --------------------------------------------------------


def _transfer_row(exam_id: str, node_id: int, status: str, *, age: timedelta, started: bool = True) -> int:
    """Insert a transfer as a server that stopped mid-way leaves it, `age` old."""
    at = utcnow() - age
    with session_scope() as session:
        row = DicomTransfer(examination_id=exam_id, node_id=node_id, status=status, created_at=at,
                            started_at=at if started else None, files_total=4, files_sent=1)
        session.add(row)
        session.flush()
        return row.id


def _stale_age() -> timedelta:
    return timedelta(minutes=get_settings().dicom_transfer_timeout_minutes) + dicom_send.INTERRUPTED_MARGIN


def test_interrupted_transfers_marked_failed(admin, reported_exam):
    node_id = _node(admin, 104)
    running = _transfer_row(reported_exam, node_id, TransferStatus.RUNNING, age=_stale_age() + timedelta(minutes=1))
    queued = _transfer_row(reported_exam, node_id, TransferStatus.QUEUED, age=_stale_age() + timedelta(minutes=1),
                           started=False)
    recent = _transfer_row(reported_exam, node_id, TransferStatus.RUNNING, age=timedelta(minutes=2))
    finished = _transfer_row(reported_exam, node_id, TransferStatus.SUCCEEDED, age=_stale_age() * 2)

    assert dicom_send.fail_interrupted_transfers() == 2

    for transfer_id in (running, queued):
        transfer = dicom_send.get_transfer(actor=admin, transfer_id=transfer_id)
        assert transfer.status == TransferStatus.FAILED
        assert transfer.error == 'interrupted: the server stopped while sending; send again'
        assert transfer.finished_at is not None
    assert dicom_send.get_transfer(actor=admin, transfer_id=recent).status == TransferStatus.RUNNING
    assert dicom_send.get_transfer(actor=admin, transfer_id=finished).status == TransferStatus.SUCCEEDED
    assert dicom_send.fail_interrupted_transfers() == 0


def test_timeout_setting_bounds_interrupted(admin, reported_exam, monkeypatch):
    node_id = _node(admin, 104)
    transfer_id = _transfer_row(reported_exam, node_id, TransferStatus.RUNNING, age=timedelta(minutes=70))
    monkeypatch.setenv('SECONDOPINION_DICOM_TRANSFER_TIMEOUT_MINUTES', '120')
    reset_settings()

    assert dicom_send.fail_interrupted_transfers() == 0
    assert dicom_send.get_transfer(actor=admin, transfer_id=transfer_id).status == TransferStatus.RUNNING


def test_transfer_running_here_not_failed(admin, reported_exam):
    """A transfer that this process is still sending stays running, however old the check thinks it is."""
    release = threading.Event()
    received: list[Dataset] = []

    def store(event: evt.Event) -> int:
        release.wait(timeout=60)
        received.append(event.dataset)
        return 0x0000

    ae = AE(ae_title=SCP_AE_TITLE)
    for context in AllStoragePresentationContexts:
        ae.add_supported_context(context.abstract_syntax, ALL_TRANSFER_SYNTAXES)
    server = ae.start_server(('127.0.0.1', 0), block=False, evt_handlers=[(evt.EVT_C_STORE, store)])
    try:
        node_id = _node(admin, server.server_address[1])
        transfer_id = dicom_send.send_study(actor=admin, examination_id=reported_exam, node_id=node_id)
        deadline = time.monotonic() + 30
        while dicom_send.get_transfer(actor=admin, transfer_id=transfer_id).status != TransferStatus.RUNNING:
            assert time.monotonic() < deadline, 'the transfer did not start'
            time.sleep(0.05)

        failed = dicom_send.fail_interrupted_transfers(now=utcnow() + _stale_age() * 2)
        status_while_sending = dicom_send.get_transfer(actor=admin, transfer_id=transfer_id).status
        release.set()
        transfer = _wait(admin, transfer_id)
    finally:
        release.set()
        server.shutdown()

    assert failed == 0
    assert status_while_sending == TransferStatus.RUNNING
    assert transfer.status == TransferStatus.SUCCEEDED, transfer.error
    assert len(received) == 4


def test_transfer_stops_at_timeout(admin, reported_exam, storage_scp, monkeypatch):
    monkeypatch.setattr(dicom_send, '_deadline', lambda: time.monotonic() - 1)
    node_id = _node(admin, storage_scp.port)

    transfer = _wait(admin, dicom_send.send_study(actor=admin, examination_id=reported_exam, node_id=node_id))

    assert transfer.status == TransferStatus.FAILED
    assert 'timed out after 60 minutes' in transfer.error
    assert 'SECONDOPINION_DICOM_TRANSFER_TIMEOUT_MINUTES' in transfer.error
    assert storage_scp.received == []


def test_failed_transfer_sent_again(admin, patient, reported_exam, storage_scp):
    node_id = _node(admin, 1)
    failed = _wait(admin, dicom_send.send_study(actor=admin, examination_id=reported_exam, node_id=node_id))
    assert failed.status == TransferStatus.FAILED
    dicom_nodes.save_node(actor=admin, name='Test PACS', ae_title=SCP_AE_TITLE, host='127.0.0.1',
                          port=storage_scp.port, node_id=node_id)

    again = _wait(admin, dicom_send.resend(actor=admin, transfer_id=failed.id))

    assert again.id != failed.id
    assert again.status == TransferStatus.SUCCEEDED, again.error
    assert (again.examination_id, again.node_id) == (reported_exam, node_id)
    assert len(storage_scp.received) == 4
    with pytest.raises(ConflictError):
        dicom_send.resend(actor=admin, transfer_id=again.id)
    with pytest.raises(PermissionDeniedError):
        dicom_send.resend(actor=patient, transfer_id=failed.id)
    with pytest.raises(NotFoundError):
        dicom_send.resend(actor=admin, transfer_id=999)


def test_scheduler_fails_interrupted_at_start(admin, reported_exam):
    node_id = _node(admin, 104)
    transfer_id = _transfer_row(reported_exam, node_id, TransferStatus.RUNNING, age=_stale_age() * 2)

    scheduler.start_scheduler()
    try:
        deadline = time.monotonic() + 30
        while dicom_send.get_transfer(actor=admin, transfer_id=transfer_id).status == TransferStatus.RUNNING:
            assert time.monotonic() < deadline, 'the scheduler did not mark the transfer failed'
            time.sleep(0.05)
    finally:
        scheduler.stop_scheduler()

    assert dicom_send.get_transfer(actor=admin, transfer_id=transfer_id).status == TransferStatus.FAILED
