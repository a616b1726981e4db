"""The chunked upload: announce, send each file, commit; limits, interruptions, ownership and the stale sweep."""

import asyncio
import os
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import select
from starlette.requests import ClientDisconnect

from secondopinion import db
from secondopinion.config import get_settings, reset_settings
from secondopinion.models import StudyFile
from secondopinion.services import sessions, uploads
from secondopinion.services.errors import NotFoundError, ValidationError

from tests.conftest import open_session

from .dicom_files import (create_draft, dicomdir_folder, jpeg_bytes, pydicom_file, row_counts, sha256_of,
                          stored_blobs)


SESSION = 'browser-session-1'


@pytest.fixture
def patient(make_patient):
    return make_patient()


@pytest.fixture
def exam_id(patient):
    return create_draft(patient)


async def _chunks(data: bytes, size: int = 7000, fail_after: int | None = None) -> AsyncIterator[bytes]:
    """Yield the body in pieces as Starlette does; with `fail_after`, the browser disconnects after that many bytes."""
    for start in range(0, len(data), size):
        if fail_after is not None and start >= fail_after:
            raise ClientDisconnect()
        yield data[start:start + size]


def _announce(paths: list[Path], names: list[str] | None = None) -> list[uploads.AnnouncedFile]:
    names = names or [path.name for path in paths]
    return [uploads.AnnouncedFile(name, path.stat().st_size) for name, path in zip(names, paths)]


def _start(actor, exam_id: str, files: list[uploads.AnnouncedFile], folder: bool = False) -> str:  # noqa: ANN001
    return uploads.start_upload(actor=actor, examination_id=exam_id, files=files, session_id=SESSION, folder=folder)


def _send(patient, upload_id: str, index: int, data: bytes, **options) -> None:
    slot = uploads.open_file_slot(actor=patient, upload_id=upload_id, index=index)
    asyncio.run(uploads.receive_file(slot, _chunks(data, **options)))


def _upload(patient, exam_id: str, paths: list[Path], names: list[str] | None = None, folder: bool = False):
    upload_id = _start(patient, exam_id, _announce(paths, names),
                                     folder=folder)
    for index, path in enumerate(paths):
        _send(patient, upload_id, index, path.read_bytes())
    return uploads.commit_upload(actor=patient, upload_id=upload_id)


def _staged() -> list[Path]:
    root = uploads.staging_root()
    return sorted(root.rglob('*')) if root.exists() else []


def test_upload_stores_files_clears_staging(patient, exam_id):
    paths = [pydicom_file('CT_small.dcm'), pydicom_file('MR_small.dcm')]
    summary = _upload(patient, exam_id, paths)
    assert (summary.accepted, summary.series_count) == (2, 2)
    assert row_counts(exam_id) == {'studies': 2, 'series': 2, 'files': 2}
    assert _staged() == []


def test_commit_stores_same_bytes_and_hash(patient, exam_id):
    path = pydicom_file('CT_small.dcm')
    _upload(patient, exam_id, [path])
    with db.session_scope() as session:
        row = session.scalars(select(StudyFile).where(StudyFile.examination_id == exam_id)).one()
        key, size, sha256 = row.storage_key, row.size_bytes, row.sha256
    assert (get_settings().blob_dir / key).read_bytes() == path.read_bytes()
    assert size == path.stat().st_size
    assert sha256 == sha256_of(path)


def test_sending_a_file_again_replaces_it(patient, exam_id):
    path = pydicom_file('CT_small.dcm')
    upload_id = _start(patient, exam_id, _announce([path]))
    with pytest.raises(ClientDisconnect):  # interrupted, as on a lost connection
        _send(patient, upload_id, 0, path.read_bytes(), fail_after=7000)
    _send(patient, upload_id, 0, path.read_bytes())  # the browser's retry
    assert uploads.commit_upload(actor=patient, upload_id=upload_id).accepted == 1


def test_interrupted_file_leaves_no_partial_file(patient, exam_id):
    path = pydicom_file('CT_small.dcm')
    upload_id = _start(patient, exam_id, _announce([path]))
    with pytest.raises(ClientDisconnect):
        _send(patient, upload_id, 0, path.read_bytes(), fail_after=14000)
    assert [entry.name for entry in _staged()] == [upload_id, uploads.MANIFEST_NAME]


def test_commit_missing_file_stores_nothing(patient, exam_id):
    paths = [pydicom_file('CT_small.dcm'), pydicom_file('MR_small.dcm')]
    upload_id = _start(patient, exam_id, _announce(paths))
    _send(patient, upload_id, 0, paths[0].read_bytes())
    with pytest.raises(ValidationError, match=r'1 of the 2 files did not arrive: MR_small\.dcm'):
        uploads.commit_upload(actor=patient, upload_id=upload_id)
    assert row_counts(exam_id) == {'studies': 0, 'series': 0, 'files': 0}
    assert stored_blobs() == []
    assert _staged() == []


def test_receive_larger_body_rejected(patient, exam_id):
    path = pydicom_file('CT_small.dcm')
    upload_id = _start(patient, exam_id, [uploads.AnnouncedFile('a.dcm', 100)])
    with pytest.raises(uploads.FileTooLargeError, match='a.dcm is larger than the 100 bytes announced'):
        _send(patient, upload_id, 0, path.read_bytes())
    slot = uploads.open_file_slot(actor=patient, upload_id=upload_id, index=0)
    assert not slot.partial_path.exists()
    assert not slot.path.exists()
    with pytest.raises(uploads.FileTooLargeError):
        uploads.check_declared_length(slot, 101)
    with pytest.raises(ValidationError, match='not the 100 announced'):
        uploads.check_declared_length(slot, 99)


def test_receive_short_body_not_kept(patient, exam_id):
    upload_id = _start(patient, exam_id, [uploads.AnnouncedFile('a.dcm', 100)])
    with pytest.raises(ValidationError, match=r'a.dcm arrived incomplete \(60 of 100 bytes\)'):
        _send(patient, upload_id, 0, b'x' * 60)
    assert [entry.name for entry in _staged()] == [upload_id, uploads.MANIFEST_NAME]


@pytest.mark.parametrize(('variable', 'value', 'files', 'message'), [
    (None, None, [], 'No files were chosen'),
    ('SECONDOPINION_MAX_FILES_PER_UPLOAD', '2', [('a', 1)] * 3, '3 files were chosen, more than the 2'),
    ('SECONDOPINION_MAX_FILE_BYTES', '1000', [('small.dcm', 900), ('big.dcm', 1001)],
     r'Larger than the limit of 1000 bytes per file: big\.dcm\.'),
    ('SECONDOPINION_MAX_EXAMINATION_BYTES', '5000', [('a.dcm', 3000), ('b.dcm', 3000)],
     'These files have 5.9 KB and the examination already has 0 bytes of images, more than the limit of 4.9 KB'),
])
def test_start_refuses_what_the_limits_forbid(patient, exam_id, monkeypatch, variable, value, files, message):
    if variable:
        monkeypatch.setenv(variable, value)
        reset_settings()
    announced = [uploads.AnnouncedFile(name, size) for name, size in files]
    with pytest.raises(ValidationError, match=message):
        _start(patient, exam_id, announced)
    assert _staged() == []


def test_examination_limit_counts_stored_images(patient, exam_id, monkeypatch):
    path = pydicom_file('CT_small.dcm')
    _upload(patient, exam_id, [path])
    monkeypatch.setenv('SECONDOPINION_MAX_EXAMINATION_BYTES', str(path.stat().st_size + 100))
    reset_settings()
    expected = 'the examination already has 38.3 KB of images, more than the limit of 38.4 KB'
    with pytest.raises(ValidationError, match=expected):
        _start(patient, exam_id, [uploads.AnnouncedFile('b.dcm', 200)])


def test_another_patient_cannot_touch_an_upload(patient, exam_id, make_patient):
    path = pydicom_file('CT_small.dcm')
    upload_id = _start(patient, exam_id, _announce([path]))
    other = make_patient('Eve Other', email='eve@example.org')
    with pytest.raises(NotFoundError):
        uploads.open_file_slot(actor=other, upload_id=upload_id, index=0)
    with pytest.raises(NotFoundError):
        uploads.commit_upload(actor=other, upload_id=upload_id)
    uploads.cancel_upload(actor=other, upload_id=upload_id)  # treated as a missing upload: deletes nothing
    with pytest.raises(NotFoundError):
        _start(other, exam_id, _announce([path]))
    _send(patient, upload_id, 0, path.read_bytes())
    assert uploads.commit_upload(actor=patient, upload_id=upload_id).accepted == 1


@pytest.mark.parametrize('upload_id', ['', '../../etc', 'A' * 32, '0' * 31])
def test_malformed_upload_ids_are_not_found(patient, upload_id):
    with pytest.raises(NotFoundError):
        uploads.open_file_slot(actor=patient, upload_id=upload_id, index=0)


def test_index_outside_the_announced_files_is_not_found(patient, exam_id):
    upload_id = _start(patient, exam_id, [uploads.AnnouncedFile('a', 1)])
    for index in (-1, 1):
        with pytest.raises(NotFoundError):
            uploads.open_file_slot(actor=patient, upload_id=upload_id, index=index)


def test_commit_twice_not_found(patient, exam_id):
    path = pydicom_file('CT_small.dcm')
    upload_id = _start(patient, exam_id, _announce([path]))
    _send(patient, upload_id, 0, path.read_bytes())
    uploads.commit_upload(actor=patient, upload_id=upload_id)
    with pytest.raises(NotFoundError):
        uploads.commit_upload(actor=patient, upload_id=upload_id)
    assert row_counts(exam_id)['files'] == 1


def test_cancel_removes_staged_files(patient, exam_id):
    path = pydicom_file('CT_small.dcm')
    upload_id = _start(patient, exam_id, _announce([path]))
    _send(patient, upload_id, 0, path.read_bytes())
    uploads.cancel_upload(actor=patient, upload_id=upload_id)
    assert _staged() == []
    with pytest.raises(NotFoundError):
        uploads.commit_upload(actor=patient, upload_id=upload_id)


def test_refused_files_are_named_and_nothing_is_stored(patient, exam_id, tmp_path):
    photo = tmp_path / 'holiday.dcm'
    photo.write_bytes(jpeg_bytes())
    with pytest.raises(ValidationError, match=r'holiday\.dcm'):
        _upload(patient, exam_id, [pydicom_file('CT_small.dcm'), photo])
    assert row_counts(exam_id) == {'studies': 0, 'series': 0, 'files': 0}
    assert stored_blobs() == []
    assert _staged() == []


def test_folder_upload_skips_non_dicom(patient, exam_id, tmp_path):
    """A CD folder: images with the same base name in two subfolders, a DICOMDIR, a README and viewer files."""
    cd = dicomdir_folder()
    images = sorted(path for path in cd.rglob('*') if path.is_file() and path.name != 'DICOMDIR'
                    and not path.name.startswith('README'))[:2]
    readme = tmp_path / 'README.TXT'
    readme.write_text('Open the viewer to see the images.')
    paths = [cd / 'DICOMDIR', images[0], images[1], readme]
    names = ['CD/DICOMDIR', 'CD/A/IM000001', 'CD/B/IM000001', 'CD/README.TXT']
    summary = _upload(patient, exam_id, paths, names=names, folder=True)
    assert (summary.accepted, summary.skipped_count) == (2, 2)
    assert sorted(summary.skipped_names) == ['CD/DICOMDIR', 'CD/README.TXT']


def test_loose_files_that_are_not_dicom_are_refused(patient, exam_id, tmp_path):
    readme = tmp_path / 'README.TXT'
    readme.write_text('Open the viewer to see the images.')
    with pytest.raises(ValidationError, match='README.TXT'):
        _upload(patient, exam_id, [pydicom_file('CT_small.dcm'), readme])


def test_sweep_removes_only_stale_uploads(patient, exam_id):
    stale = _start(patient, exam_id, [uploads.AnnouncedFile('a', 1)])
    fresh = _start(patient, exam_id, [uploads.AnnouncedFile('b', 1)])
    old = time.time() - uploads.STALE_AFTER_SECONDS - 60
    for path in [uploads.staging_root() / stale, *(uploads.staging_root() / stale).iterdir()]:
        os.utime(path, (old, old))
    assert uploads.sweep_stale_uploads() == 1
    assert sorted(path.name for path in uploads.staging_root().iterdir()) == [fresh]


def test_only_the_starting_session_may_send_files(patient, exam_id, make_patient):
    upload_id = _start(patient, exam_id, [uploads.AnnouncedFile('a', 1)])
    token = open_session(patient.user_id)
    assert uploads.session_actor(upload_id=upload_id, session_id=SESSION,
                                 session_token=token).user_id == patient.user_id
    for other_session in ('browser-session-2', '', None):
        with pytest.raises(NotFoundError):
            uploads.session_actor(upload_id=upload_id, session_id=other_session, session_token=token)
    # The right browser id is not enough: the cookie must hold a live session of the same account.
    other_token = open_session(make_patient(name='Bea Other').user_id)
    for wrong_token in (other_token, 'not-a-session', None):
        with pytest.raises(NotFoundError):
            uploads.session_actor(upload_id=upload_id, session_id=SESSION, session_token=wrong_token)
    sessions.end(token)
    with pytest.raises(NotFoundError):
        uploads.session_actor(upload_id=upload_id, session_id=SESSION, session_token=token)
