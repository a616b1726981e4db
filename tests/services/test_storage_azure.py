"""AzureBlobStorage against Azurite, the Azure Storage emulator, started on a free loopback port.

Azurite is found through the AZURITE_BLOB environment variable (path of the `azurite-blob`
executable), then `azurite-blob` on PATH, then /work/azurite/node_modules/.bin/azurite-blob.
Install it with `npm install --prefix DIR azurite@3`. The tests skip when none of these exists.
"""

from __future__ import annotations

import hashlib
import io
import os
import shutil
import socket
import subprocess
import time
import tracemalloc
import uuid
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from azure.storage.blob import BlobServiceClient
from pydicom.data import get_testdata_file

from secondopinion.config import reset_settings
from secondopinion.services import examinations, studies
from secondopinion.services.storage import InvalidKeyError, LocalStorage, get_storage
from secondopinion.services.storage_azure import BLOCK_SIZE, AzureBlobStorage

DEFAULT_AZURITE_PATH = Path('/work/azurite/node_modules/.bin/azurite-blob')
# Azurite's built-in development account. Azurite ships this key as EMULATOR_ACCOUNT_KEY, so it protects nothing.
DEV_ACCOUNT = 'devstoreaccount1'
DEV_ACCOUNT_KEY = 'Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=='
STARTUP_TIMEOUT_SECONDS = 30
MiB = 1024 * 1024


def find_azurite() -> str | None:
    configured = os.environ.get('AZURITE_BLOB')
    if configured:
        return configured
    on_path = shutil.which('azurite-blob')
    if on_path:
        return on_path
    if DEFAULT_AZURITE_PATH.exists():
        return str(DEFAULT_AZURITE_PATH)
    return None


def free_loopback_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(('127.0.0.1', 0))
        return probe.getsockname()[1]


def connection_string_for(port: int) -> str:
    return (f'DefaultEndpointsProtocol=http;AccountName={DEV_ACCOUNT};AccountKey={DEV_ACCOUNT_KEY};'
            f'BlobEndpoint=http://127.0.0.1:{port}/{DEV_ACCOUNT};')


def wait_for_port(process: subprocess.Popen, port: int) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f'Azurite exited with code {process.returncode} before listening on port {port}.')
        try:
            with socket.create_connection(('127.0.0.1', port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f'Azurite did not listen on 127.0.0.1:{port} within {STARTUP_TIMEOUT_SECONDS} s.')


@pytest.fixture(scope='module')
def azurite_connection_string(tmp_path_factory) -> Iterator[str]:
    """Start Azurite's blob service for this module and return a connection string for it."""
    executable = find_azurite()
    if executable is None:
        pytest.skip('Azurite not found: set AZURITE_BLOB to the azurite-blob executable, put azurite-blob on PATH, '
                    f'or run `npm install --prefix /work/azurite azurite@3` to create {DEFAULT_AZURITE_PATH}.')
    port = free_loopback_port()
    location = tmp_path_factory.mktemp('azurite')
    process = subprocess.Popen(
        [executable, '--blobHost', '127.0.0.1', '--blobPort', str(port), '--location', str(location),
         '--skipApiVersionCheck', '--disableTelemetry', '--silent'],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        wait_for_port(process, port)
        yield connection_string_for(port)
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        if process.stderr:
            process.stderr.close()


@pytest.fixture
def container_name() -> str:
    return f'test-{uuid.uuid4().hex[:16]}'


@pytest.fixture
def storage(azurite_connection_string, container_name) -> AzureBlobStorage:
    return AzureBlobStorage(azurite_connection_string, container_name)


def committed_blob_names(connection_string: str, container: str) -> list[str]:
    container_client = BlobServiceClient.from_connection_string(connection_string).get_container_client(container)
    if not container_client.exists():
        return []
    return sorted(blob.name for blob in container_client.list_blobs())


def pattern_chunks(total: int, chunk_size: int) -> Iterator[bytes]:
    """Yield `total` bytes of a repeating, position-dependent pattern without holding them all."""
    offset = 0
    while offset < total:
        size = min(chunk_size, total - offset)
        block_number = offset // chunk_size
        yield bytes((block_number * 7 + index) % 251 for index in range(256)) * (size // 256) + b'\x5a' * (size % 256)
        offset += size


def test_save_and_read_back(storage):
    written = storage.save('exams/abc/files/one.dcm', [b'hello ', b'world'])

    assert written == 11
    assert storage.exists('exams/abc/files/one.dcm')
    assert storage.size('exams/abc/files/one.dcm') == 11
    assert b''.join(storage.iter_chunks('exams/abc/files/one.dcm')) == b'hello world'
    with storage.open('exams/abc/files/one.dcm') as file:
        assert file.read() == b'hello world'


def test_empty_blob_round_trip(storage):
    written = storage.save('empty/blob', [])

    assert written == 0
    assert storage.exists('empty/blob')
    assert storage.size('empty/blob') == 0
    assert list(storage.iter_chunks('empty/blob')) == []
    with storage.open('empty/blob') as file:
        assert file.read() == b''


def test_iter_chunks_respects_chunk_size(storage):
    storage.save('a/b.bin', [b'x' * 10])

    chunks = list(storage.iter_chunks('a/b.bin', chunk_size=4))

    assert [len(chunk) for chunk in chunks] == [4, 4, 2]


def test_save_file_copies_local_file(storage, tmp_path):
    source = tmp_path / 'source.bin'
    source.write_bytes(b'\x00\x01' * 1000)

    written = storage.save_file('copies/source.bin', source)

    assert written == 2000
    assert b''.join(storage.iter_chunks('copies/source.bin')) == source.read_bytes()


def test_move_file_uploads_and_deletes_local_file(storage, tmp_path):
    source = tmp_path / 'staged.bin'
    source.write_bytes(b'\x00\x01' * 1000)

    written = storage.move_file('moved/staged.bin', source)

    assert written == 2000
    assert not source.exists()
    assert b''.join(storage.iter_chunks('moved/staged.bin')) == b'\x00\x01' * 1000


def test_save_replaces_existing_blob(storage):
    storage.save('k/v', [b'old'])
    storage.save('k/v', [b'new content'])

    assert b''.join(storage.iter_chunks('k/v')) == b'new content'


def test_large_stream_uses_blocks(storage, azurite_connection_string, container_name):
    total = 20 * MiB + 12345
    expected = hashlib.sha256()
    for chunk in pattern_chunks(total, MiB + 7):
        expected.update(chunk)

    written = storage.save('big/file.bin', pattern_chunks(total, MiB + 7))

    assert written == total
    assert storage.size('big/file.bin') == total
    blob = BlobServiceClient.from_connection_string(azurite_connection_string).get_blob_client(
        container_name, 'big/file.bin')
    committed, uncommitted = blob.get_block_list('all')
    assert [block.size for block in committed] == [BLOCK_SIZE] * 5 + [total - 5 * BLOCK_SIZE]
    assert uncommitted == []

    from_chunks = hashlib.sha256()
    sizes = set()
    for chunk in storage.iter_chunks('big/file.bin'):
        from_chunks.update(chunk)
        sizes.add(len(chunk))
    assert from_chunks.hexdigest() == expected.hexdigest()
    assert max(sizes) <= MiB

    from_file = hashlib.sha256()
    with storage.open('big/file.bin') as file:
        while chunk := file.read(3 * MiB + 1):
            from_file.update(chunk)
    assert from_file.hexdigest() == expected.hexdigest()


def test_large_stream_memory_stays_bounded(storage):
    total = 20 * MiB

    tracemalloc.start()
    try:
        storage.save('big/memory.bin', pattern_chunks(total, MiB))
        _, upload_peak = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        read = 0
        for chunk in storage.iter_chunks('big/memory.bin'):
            read += len(chunk)
        _, download_peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    assert read == total
    assert upload_peak < 16 * MiB, f'upload of {total} bytes peaked at {upload_peak} bytes of Python memory'
    assert download_peak < 16 * MiB, f'download of {total} bytes peaked at {download_peak} bytes of Python memory'


def test_open_streams_partial_reads(storage):
    storage.save('big/partial.bin', pattern_chunks(9 * MiB, MiB))
    first_chunk = next(pattern_chunks(9 * MiB, MiB))

    with storage.open('big/partial.bin') as file:
        assert file.readable()
        assert not file.seekable()
        head = file.read(10)
        rest_of_first_mib = file.read(MiB - 10)

    assert head == first_chunk[:10]
    assert rest_of_first_mib == first_chunk[10:]


def test_delete_missing_key_is_fine(storage):
    storage.delete('never/written')

    assert not storage.exists('never/written')


def test_delete_removes_blob(storage, azurite_connection_string, container_name):
    storage.save('k/v', [b'data'])

    storage.delete('k/v')

    assert not storage.exists('k/v')
    assert committed_blob_names(azurite_connection_string, container_name) == []


def test_reading_missing_key_raises(storage):
    storage.save('other/key', [b'data'])  # the container exists, the blob does not

    with pytest.raises(FileNotFoundError):
        storage.open('missing/key')
    with pytest.raises(FileNotFoundError):
        list(storage.iter_chunks('missing/key'))
    with pytest.raises(FileNotFoundError):
        storage.size('missing/key')


def test_reading_before_container_exists_raises(storage):
    assert not storage.exists('missing/key')
    with pytest.raises(FileNotFoundError):
        storage.open('missing/key')
    with pytest.raises(FileNotFoundError):
        storage.size('missing/key')
    storage.delete('missing/key')


def test_failed_save_leaves_no_blob(storage, azurite_connection_string, container_name):
    def failing_chunks():
        yield b'first part'
        yield from pattern_chunks(5 * MiB, MiB)  # so at least one block is staged before the failure
        raise ConnectionError('upload interrupted')

    with pytest.raises(ConnectionError):
        storage.save('exams/abc/files/broken.dcm', failing_chunks())

    assert not storage.exists('exams/abc/files/broken.dcm')
    assert committed_blob_names(azurite_connection_string, container_name) == []
    with pytest.raises(FileNotFoundError):
        storage.size('exams/abc/files/broken.dcm')


def test_failed_save_keeps_previous_blob(storage, azurite_connection_string, container_name):
    storage.save('k/v', [b'complete old blob'])

    def failing_chunks():
        yield from pattern_chunks(5 * MiB, MiB)
        raise ConnectionError('upload interrupted')

    with pytest.raises(ConnectionError):
        storage.save('k/v', failing_chunks())

    assert b''.join(storage.iter_chunks('k/v')) == b'complete old blob'
    assert committed_blob_names(azurite_connection_string, container_name) == ['k/v']


@pytest.mark.parametrize('key', [
    '',
    '/etc/passwd',
    '../outside',
    'exams/../../outside',
    'exams/./file',
    'exams//file',
    'exams/file/',
    'exams\\file',
    'exams/fi le',
    'exams/ümlaut',
    'exams/.hidden',
    'exams/' + 'x' * 300,
])
def test_invalid_keys_rejected(storage, azurite_connection_string, container_name, key):
    with pytest.raises(InvalidKeyError):
        storage.save(key, [b'data'])
    with pytest.raises(InvalidKeyError):
        storage.open(key)
    with pytest.raises(InvalidKeyError):
        storage.exists(key)
    with pytest.raises(InvalidKeyError):
        storage.delete(key)
    assert committed_blob_names(azurite_connection_string, container_name) == []


@pytest.mark.parametrize('name', ['ab', 'Upper', '-leading', 'trailing-', 'double--hyphen', 'under_score', 'x' * 64])
def test_invalid_container_name_rejected(azurite_connection_string, name):
    with pytest.raises(ValueError, match='container name'):
        AzureBlobStorage(azurite_connection_string, name)


def test_check_creates_container_and_leaves_nothing(storage, azurite_connection_string, container_name):
    storage.check()

    container_client = BlobServiceClient.from_connection_string(azurite_connection_string).get_container_client(
        container_name)
    assert container_client.exists()
    assert committed_blob_names(azurite_connection_string, container_name) == []


def test_check_raises_when_unreachable():
    closed_port = free_loopback_port()
    # Without retry_total=0 the SDK retries with backoff for several seconds.
    unreachable = AzureBlobStorage(connection_string_for(closed_port), 'unreachable', retry_total=0)

    with pytest.raises(OSError, match='unreachable'):
        unreachable.check()


def test_get_storage_selects_backend(azurite_connection_string, container_name, monkeypatch):
    assert isinstance(get_storage(), LocalStorage)

    monkeypatch.setenv('SECONDOPINION_AZURE_STORAGE_CONNECTION_STRING', azurite_connection_string)
    monkeypatch.setenv('SECONDOPINION_AZURE_STORAGE_CONTAINER', container_name)
    reset_settings()
    azure = get_storage()

    assert isinstance(azure, AzureBlobStorage)
    assert azure.container == container_name
    assert get_storage() is azure
    assert 'AccountKey' not in repr(azure)

    monkeypatch.setenv('SECONDOPINION_AZURE_STORAGE_CONNECTION_STRING', '')
    reset_settings()
    assert isinstance(get_storage(), LocalStorage)


def test_upload_and_zip_through_azure(azurite_connection_string, container_name, make_patient, monkeypatch,
                                      tmp_path):
    monkeypatch.setenv('SECONDOPINION_AZURE_STORAGE_CONNECTION_STRING', azurite_connection_string)
    monkeypatch.setenv('SECONDOPINION_AZURE_STORAGE_CONTAINER', container_name)
    reset_settings()
    patient = make_patient()
    examination_id = examinations.create_draft(actor=patient)
    upload = tmp_path / 'upload.dcm'
    shutil.copyfile(get_testdata_file('CT_small.dcm'), upload)
    original = upload.read_bytes()

    summary = studies.add_files(actor=patient, examination_id=examination_id, files=[('CT_small.dcm', upload)])

    assert summary.accepted == 1
    names = committed_blob_names(azurite_connection_string, container_name)
    dicom_names = [name for name in names if name.startswith(f'exams/{examination_id}/files/')]
    assert len(dicom_names) == 1
    local_blob_dir = tmp_path / 'data' / 'blobs'
    assert not local_blob_dir.exists() or not any(path.is_file() for path in local_blob_dir.rglob('*'))

    file_name, chunks = studies.stream_images_zip(actor=patient, examination_id=examination_id)
    archive_bytes = b''.join(chunks)

    assert file_name.endswith('-images.zip')
    with zipfile.ZipFile(io.BytesIO(archive_bytes)) as archive:
        entries = archive.namelist()
        assert len(entries) == 1
        assert entries[0].endswith('.dcm')
        assert archive.read(entries[0]) == original
