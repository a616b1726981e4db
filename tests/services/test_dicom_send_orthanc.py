"""Sending a study and its report with C-STORE to a real Orthanc on loopback, checked through Orthanc's REST API."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pydicom
import pytest
from pydicom.data import get_testdata_file

from bench.orthanc import ORTHANC_BINARY, OrthancServer
from secondopinion.models import TransferStatus
from secondopinion.services import dicom_nodes, dicom_send, examinations, payments, reports, standards, studies
from tests.services.test_dicom_send import _wait

pytestmark = pytest.mark.skipif(not Path(ORTHANC_BINARY).exists(),
                                reason=f'{ORTHANC_BINARY} is missing: install Orthanc with `apt-get install orthanc`')

FILES = ['CT_small.dcm', 'MR_small.dcm', 'JPEG2000.dcm']


@pytest.fixture
def orthanc(tmp_path) -> Iterator[OrthancServer]:
    server = OrthancServer(tmp_path / 'orthanc', store_from_ae_title=dicom_nodes.DEFAULT_CALLING_AE_TITLE)
    yield server
    server.stop()


@pytest.fixture
def reported_exam(make_patient, make_doctor) -> tuple[object, str]:
    patient = make_patient()
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
    reports.finalize(actor=doctor, examination_id=exam_id, findings='Solid nodule, 6 mm.',
                     impression='Probably benign.', recommendations='')
    return patient, exam_id


def _orthanc_instances(orthanc: OrthancServer) -> dict[str, dict]:
    """Return Orthanc's instances as {SOPInstanceUID: simplified tags}."""
    with httpx.Client(base_url=orthanc.url, trust_env=False, timeout=30) as client:
        ids = client.get('/instances').json()
        tags = [client.get(f'/instances/{instance_id}/simplified-tags').json() for instance_id in ids]
        return {item['SOPInstanceUID']: {**item, 'orthanc_id': instance_id} for instance_id, item in zip(ids, tags)}


def test_study_and_report_stored_in_orthanc(admin, reported_exam, orthanc):
    patient, exam_id = reported_exam
    node_id = dicom_nodes.save_node(actor=admin, name='Orthanc', ae_title=orthanc.dicom_ae_title, host='127.0.0.1',
                                    port=orthanc.dicom_port)

    transfer = _wait(admin, dicom_send.send_study(actor=admin, examination_id=exam_id, node_id=node_id))

    assert transfer.status == TransferStatus.SUCCEEDED, transfer.error
    assert (transfer.files_total, transfer.files_sent, transfer.files_failed) == (4, 4, 0)
    stored = _orthanc_instances(orthanc)
    originals = {str(pydicom.dcmread(get_testdata_file(name)).SOPInstanceUID): name for name in FILES}
    assert set(originals) <= set(stored)
    assert len(stored) == 4
    report_uids = [uid for uid in stored if uid not in originals]
    assert len(report_uids) == 1
    report = stored[report_uids[0]]
    assert report['SOPClassUID'] == standards.ENCAPSULATED_PDF_STORAGE
    assert report['MIMETypeOfEncapsulatedDocument'] == 'application/pdf'
    with httpx.Client(base_url=orthanc.url, trust_env=False, timeout=30) as client:
        document = client.get(f'/instances/{report["orthanc_id"]}/content/0042-0011').content
    _name, chunks = reports.open_report_pdf(actor=patient, examination_id=exam_id)
    pdf = b''.join(chunks)
    assert document[:len(pdf)] == pdf


def test_unknown_calling_ae_title_refused(admin, reported_exam, orthanc):
    _patient, exam_id = reported_exam
    node_id = dicom_nodes.save_node(actor=admin, name='Orthanc', ae_title=orthanc.dicom_ae_title, host='127.0.0.1',
                                    port=orthanc.dicom_port, calling_ae_title='STRANGER')

    transfer = _wait(admin, dicom_send.send_study(actor=admin, examination_id=exam_id, node_id=node_id))

    assert transfer.status == TransferStatus.FAILED
    assert transfer.files_sent == 0
    assert _orthanc_instances(orthanc) == {}
