"""The chunked upload over HTTP, as the page's uploader calls it: status codes, messages and ownership."""

from __future__ import annotations

from pathlib import Path

from nicegui.testing import User
from pydicom.data import get_testdata_file

from secondopinion.services import examinations, sessions, uploads
from tests.services.dicom_files import row_counts

from .helpers import sign_in, upload

CT = Path(get_testdata_file('CT_small.dcm'))


def _announce(*files: tuple[str, int], folder: bool = False) -> dict:
    return {'folder': folder, 'files': [{'name': name, 'size': size} for name, size in files]}


async def test_upload_round_trip_over_http(user: User, make_patient):
    patient = make_patient('Alice', email='alice@example.org')
    exam_id = examinations.create_draft(actor=patient)
    await sign_in(user, 'alice@example.org')
    await user.should_see('My examinations')
    client = user.http_client

    response = await client.post(f'/api/exams/{exam_id}/uploads', json=_announce(('CT_small.dcm', CT.stat().st_size)))
    assert response.status_code == 201
    upload_id = response.json()['upload_id']
    assert (await client.put(f'/api/uploads/{upload_id}/files/0', content=CT.read_bytes())).status_code == 204
    response = await client.post(f'/api/uploads/{upload_id}/commit')
    assert response.status_code == 200
    assert response.json() == {'accepted': 1, 'duplicates': 0, 'skipped': 0, 'studies': 1, 'series': 1}
    assert row_counts(exam_id)['files'] == 1
    assert not any(uploads.staging_root().iterdir())


async def test_wrong_sizes_are_refused_with_a_message(user: User, make_patient):
    patient = make_patient('Alice', email='alice@example.org')
    exam_id = examinations.create_draft(actor=patient)
    await sign_in(user, 'alice@example.org')
    client = user.http_client
    response = await client.post(f'/api/exams/{exam_id}/uploads', json=_announce(('CT_small.dcm', 1000)))
    upload_id = response.json()['upload_id']

    response = await client.put(f'/api/uploads/{upload_id}/files/0', content=CT.read_bytes())
    assert response.status_code == 413
    assert response.json()['detail'].startswith('CT_small.dcm is larger than the 1000 bytes announced')
    response = await client.put(f'/api/uploads/{upload_id}/files/0', content=b'x' * 10)
    assert response.status_code == 400
    assert 'not the 1,000 announced' in response.json()['detail']
    assert (await client.put(f'/api/uploads/{upload_id}/files/1', content=b'x')).status_code == 404
    assert sorted(path.name for path in (uploads.staging_root() / upload_id).iterdir()) == [uploads.MANIFEST_NAME]

    response = await client.post(f'/api/uploads/{upload_id}/commit')
    assert response.status_code == 400
    assert 'did not arrive: CT_small.dcm' in response.json()['detail']
    assert row_counts(exam_id)['files'] == 0


async def test_limits_are_checked_when_the_upload_starts(user: User, make_patient, monkeypatch):
    patient = make_patient('Alice', email='alice@example.org')
    exam_id = examinations.create_draft(actor=patient)
    await sign_in(user, 'alice@example.org')
    response = await user.http_client.post(f'/api/exams/{exam_id}/uploads',
                                           json=_announce(('huge.dcm', 2 * 1024 ** 3)))
    assert response.status_code == 400
    assert response.json()['detail'].startswith('Larger than the limit of 1.0 GB per file: huge.dcm.')
    assert not uploads.staging_root().exists() or not any(uploads.staging_root().iterdir())


async def test_someone_elses_examination_or_upload_is_not_found(user: User, make_patient):
    alice = make_patient('Alice', email='alice@example.org')
    make_patient('Bob', email='bob@example.org')
    exam_id = examinations.create_draft(actor=alice)
    upload_id = uploads.start_upload(actor=alice, examination_id=exam_id, session_id='alices-browser',
                                     files=[uploads.AnnouncedFile('CT_small.dcm', CT.stat().st_size)])
    await sign_in(user, 'bob@example.org')
    client = user.http_client

    response = await client.post(f'/api/exams/{exam_id}/uploads', json=_announce(('a.dcm', 10)))
    assert response.status_code == 404
    assert (await client.put(f'/api/uploads/{upload_id}/files/0', content=CT.read_bytes())).status_code == 404
    assert (await client.post(f'/api/uploads/{upload_id}/commit')).status_code == 404
    assert (await client.delete(f'/api/uploads/{upload_id}')).status_code == 204
    assert (uploads.staging_root() / upload_id / uploads.MANIFEST_NAME).exists()


async def test_anonymous_requests_are_not_found(user: User, make_patient):
    alice = make_patient('Alice', email='alice@example.org')
    exam_id = examinations.create_draft(actor=alice)
    upload_id = uploads.start_upload(actor=alice, examination_id=exam_id, session_id='alices-browser',
                                     files=[uploads.AnnouncedFile('a', 1)])
    client = user.http_client
    assert (await client.post(f'/api/exams/{exam_id}/uploads', json=_announce(('a', 1)))).status_code == 404
    assert (await client.put(f'/api/uploads/{upload_id}/files/0', content=b'x')).status_code == 404
    assert (await client.post(f'/api/uploads/{upload_id}/commit')).status_code == 404


async def _open_new_examination(user: User, make_patient) -> None:  # noqa: ANN001
    make_patient('Alice', email='alice@example.org')
    await sign_in(user, 'alice@example.org')
    await user.should_see('You have no examinations yet.')
    user.find(marker='new-exam').click()
    await user.should_see(marker='image-upload')


async def test_page_shows_refused_files(user: User, make_patient, tmp_path):
    await _open_new_examination(user, make_patient)
    notes = tmp_path / 'notes.txt'
    notes.write_text('not an image')
    await upload(user, 'image-upload', [CT, notes])
    await user.should_see('notes.txt')
    await user.should_see(marker='no-images')


async def test_page_takes_a_folder(user: User, make_patient, tmp_path):
    await _open_new_examination(user, make_patient)
    readme = tmp_path / 'README.TXT'
    readme.write_text('Insert the CD and open the viewer.')
    await upload(user, 'image-upload', [CT, readme], names=['CD/IMAGES/IM1', 'CD/README.TXT'], folder=True)
    await user.should_see('1 DICOM image added, 1 other file skipped (not DICOM images).')
    await user.should_see(marker='image-totals')


async def test_commit_lists_rejected_files(user: User, make_patient, tmp_path):
    patient = make_patient('Alice', email='alice@example.org')
    exam_id = examinations.create_draft(actor=patient)
    await sign_in(user, 'alice@example.org')
    await user.should_see('My examinations')
    client = user.http_client
    notes = tmp_path / 'notes.txt'
    notes.write_text('not an image')
    scan = tmp_path / 'scan.jpg'
    scan.write_bytes(b'\xff\xd8\xff\xe0 not a DICOM file')

    files = [CT, notes, scan]
    response = await client.post(f'/api/exams/{exam_id}/uploads',
                                 json=_announce(*((path.name, path.stat().st_size) for path in files)))
    upload_id = response.json()['upload_id']
    for index, path in enumerate(files):
        response = await client.put(f'/api/uploads/{upload_id}/files/{index}', content=path.read_bytes())
        assert response.status_code == 204
    response = await client.post(f'/api/uploads/{upload_id}/commit')
    assert response.status_code == 400
    assert 'Nothing from this upload was saved.' in response.json()['detail']
    assert response.json()['files'] == [{'name': 'notes.txt', 'reason': 'Not a DICOM file.'},
                                        {'name': 'scan.jpg', 'reason': 'Not a DICOM file.'}]
    assert row_counts(exam_id)['files'] == 0


async def test_ended_session_stops_upload_at_once(user: User, make_patient):
    patient = make_patient('Alice', email='alice@example.org')
    exam_id = examinations.create_draft(actor=patient)
    await sign_in(user, 'alice@example.org')
    client = user.http_client
    response = await client.post(f'/api/exams/{exam_id}/uploads',
                                 json=_announce(('a.dcm', CT.stat().st_size), ('b.dcm', CT.stat().st_size)))
    upload_id = response.json()['upload_id']
    # The first file request resolves the session, which later requests of the upload reuse for 5 s.
    assert (await client.put(f'/api/uploads/{upload_id}/files/0', content=CT.read_bytes())).status_code == 204

    sessions.end(client.cookies.get(sessions.COOKIE_NAME))

    assert (await client.put(f'/api/uploads/{upload_id}/files/1', content=CT.read_bytes())).status_code == 404
