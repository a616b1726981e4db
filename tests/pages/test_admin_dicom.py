"""The admin panel's DICOM tab and the per-examination de-identification and sending tools."""

from __future__ import annotations

from datetime import timedelta

from nicegui.testing import User
from sqlalchemy import select

from secondopinion import db
from secondopinion.models import AppSetting, DicomNode, DicomTransfer, Examination, TransferStatus
from secondopinion.models.base import utcnow
from secondopinion.services import dicom_nodes, dicom_send
from tests.services.dicom_files import pydicom_file
from tests.services.flow import paid
from tests.services.test_dicom_send import SCP_AE_TITLE, _wait, storage_scp  # noqa: F401 (a fixture)
from tests.services.test_viewer import paid_exam

from .helpers import set_value, sign_in


async def _open_dicom_tab(user: User) -> None:
    await sign_in(user, 'admin@example.org')
    await user.should_see('Admin panel')
    user.find('DICOM').click()
    await user.should_see('DICOM nodes')


async def test_add_node_and_disable(user: User, admin):
    await _open_dicom_tab(user)
    user.find(marker='add-dicom-node').click()
    await user.should_see('AE title of the node')
    user.find(marker='node-name').type('Hospital PACS')
    user.find(marker='node-ae-title').type('PACS1')
    user.find(marker='node-host').type('127.0.0.1')
    set_value(user, 'node-port', '11112')
    user.find(marker='save-dicom-node').click()
    await user.should_see('PACS1@127.0.0.1:11112')

    user.find(marker='toggle-node-Hospital PACS').click()
    await user.should_see('disabled')
    with db.session_scope() as session:
        node = session.scalars(select(DicomNode)).one()
        assert (node.name, node.port, node.enabled) == ('Hospital PACS', 11112, False)


async def test_invalid_port_shown(user: User, admin):
    await _open_dicom_tab(user)
    user.find(marker='add-dicom-node').click()
    await user.should_see('AE title of the node')
    user.find(marker='node-name').type('Broken')
    user.find(marker='node-ae-title').type('PACS1')
    user.find(marker='node-host').type('127.0.0.1')
    set_value(user, 'node-port', '99999')
    user.find(marker='save-dicom-node').click()
    await user.should_see('The port "99999" is invalid')
    with db.session_scope() as session:
        assert session.scalars(select(DicomNode)).all() == []


async def test_global_switch_saved(user: User, admin):
    await _open_dicom_tab(user)
    user.find(marker='deidentify-global').click()
    await user.should_see('De-identified review for doctors is now on.')
    with db.session_scope() as session:
        assert session.get(AppSetting, 'deidentify_for_doctors').value == 'true'


async def test_exam_choice_and_send(user: User, admin, make_patient):
    exam_id = paid(make_patient('Dora Patient', email='dora@example.org'))
    dicom_nodes.save_node(actor=admin, name='Test PACS', ae_title='PACS1', host='127.0.0.1', port=1)
    await sign_in(user, 'admin@example.org')
    user.find('Examinations').click()
    user.find('De-identification and sending for one examination').click()
    set_value(user, 'exam-tools-exam', exam_id)
    await user.should_see(marker='exam-deidentify')

    set_value(user, 'exam-deidentify', 'on')
    await user.should_see('Doctors now get de-identified images.')
    with db.session_scope() as session:
        assert session.get(Examination, exam_id).deidentify is True

    # A case with only an image link and no report has nothing to send.
    user.find(marker='send-study').click()
    await user.should_see('nothing to send')


async def test_interrupted_transfer_sent_again(user: User, admin, make_patient, storage_scp):  # noqa: F811
    exam_id = paid_exam(make_patient(), [pydicom_file('CT_small.dcm')])
    node_id = dicom_nodes.save_node(actor=admin, name='Test PACS', ae_title=SCP_AE_TITLE, host='127.0.0.1',
                                    port=storage_scp.port)
    started = utcnow() - timedelta(days=1)
    with db.session_scope() as session:
        row = DicomTransfer(examination_id=exam_id, node_id=node_id, status=TransferStatus.RUNNING,
                            created_at=started, started_at=started)
        session.add(row)
        session.flush()
        transfer_id = row.id
    assert dicom_send.fail_interrupted_transfers() == 1
    await _open_dicom_tab(user)

    await user.should_see('interrupted: the server stopped while sending; send again')
    user.find(marker=f'resend-{transfer_id}').click()
    await user.should_see('Sending the study again')
    with db.session_scope() as session:
        new_id = session.scalar(select(DicomTransfer.id).where(DicomTransfer.id != transfer_id))
    assert new_id is not None
    assert _wait(admin, new_id).status == TransferStatus.SUCCEEDED
    assert len(storage_scp.received) == 1
