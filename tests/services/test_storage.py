import errno
import os
from pathlib import Path

import pytest

from secondopinion.config import get_settings, reset_settings
from secondopinion.services.storage import InvalidKeyError, LocalStorage, get_storage, validate_key


@pytest.fixture
def storage(tmp_path) -> LocalStorage:
    return LocalStorage(tmp_path / 'store' / 'blobs')


def files_under(root: Path) -> list[Path]:
    return sorted(path for path in root.rglob('*') if path.is_file())


def test_save_and_read_back(storage):
    written = storage.save('exams/abc/files/one.dcm', [b'hello ', b'world'])

    assert written == 11
    assert storage.exists('exams/abc/files/one.dcm')
    assert storage.size('exams/abc/files/one.dcm') == 11
    assert b''.join(storage.iter_chunks('exams/abc/files/one.dcm')) == b'hello world'
    with storage.open('exams/abc/files/one.dcm') as file:
        assert file.read() == b'hello world'


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


def test_move_file_renames_local_file(storage, tmp_path):
    source = storage.root.parent / 'staged.bin'  # on the storage's filesystem, so it is renamed
    source.parent.mkdir(parents=True, exist_ok=True)
    source.write_bytes(b'\x00\x01' * 1000)
    inode = source.stat().st_ino

    written = storage.move_file('moved/staged.bin', source)

    assert written == 2000
    assert not source.exists()
    assert b''.join(storage.iter_chunks('moved/staged.bin')) == b'\x00\x01' * 1000
    blob = storage.root / 'moved' / 'staged.bin'
    assert blob.stat().st_ino == inode
    assert blob.stat().st_mode & 0o777 == 0o600


def test_move_file_copies_across_filesystems(storage, tmp_path, monkeypatch):
    source = tmp_path / 'staged.bin'
    source.write_bytes(b'abc' * 100)

    rename = os.replace

    def cross_device(source_path, target_path):
        if Path(source_path) == source:
            raise OSError(errno.EXDEV, 'Invalid cross-device link')
        rename(source_path, target_path)  # save's own rename of its temporary file

    monkeypatch.setattr(os, 'replace', cross_device)
    written = storage.move_file('moved/staged.bin', source)

    assert written == 300
    assert not source.exists()
    assert b''.join(storage.iter_chunks('moved/staged.bin')) == b'abc' * 100
    assert files_under(storage.root) == [storage.root / 'moved' / 'staged.bin']


def test_save_replaces_existing_blob(storage):
    storage.save('k/v', [b'old'])
    storage.save('k/v', [b'new content'])

    assert b''.join(storage.iter_chunks('k/v')) == b'new content'


def test_delete_missing_key_is_fine(storage):
    storage.delete('never/written')

    assert not storage.exists('never/written')


def test_delete_removes_blob(storage):
    storage.save('k/v', [b'data'])

    storage.delete('k/v')

    assert not storage.exists('k/v')
    assert files_under(storage.root) == []


def test_reading_missing_key_raises(storage):
    with pytest.raises(FileNotFoundError):
        storage.open('missing/key')
    with pytest.raises(FileNotFoundError):
        list(storage.iter_chunks('missing/key'))
    with pytest.raises(FileNotFoundError):
        storage.size('missing/key')


def test_failed_save_leaves_no_temp_file(storage):
    def failing_chunks():
        yield b'first part'
        raise ConnectionError('upload interrupted')

    with pytest.raises(ConnectionError):
        storage.save('exams/abc/files/broken.dcm', failing_chunks())

    assert not storage.exists('exams/abc/files/broken.dcm')
    assert files_under(storage.root) == []


def test_failed_save_keeps_previous_blob(storage):
    storage.save('k/v', [b'complete old blob'])

    def failing_chunks():
        yield b'partial'
        raise ConnectionError('upload interrupted')

    with pytest.raises(ConnectionError):
        storage.save('k/v', failing_chunks())

    assert b''.join(storage.iter_chunks('k/v')) == b'complete old blob'
    assert files_under(storage.root) == [storage.root / 'k' / 'v']


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
def test_invalid_keys_rejected(storage, key):
    with pytest.raises(InvalidKeyError):
        validate_key(key)
    with pytest.raises(InvalidKeyError):
        storage.save(key, [b'data'])
    assert files_under(storage.root.parent) == []  # nothing written beside the root either


@pytest.mark.parametrize('key', ['a', 'exams/0123abcd/files/f3e1.dcm', 'x/y-z_1.2/file.v1.png'])
def test_valid_keys_accepted(key):
    assert validate_key(key) == key


def test_check_passes_and_leaves_nothing(storage):
    storage.check()

    assert files_under(storage.root) == []


def test_check_raises_when_folder_unwritable(tmp_path):
    blocker = tmp_path / 'not-a-folder'
    blocker.write_bytes(b'a file where the storage folder should be')

    with pytest.raises(OSError):
        LocalStorage(blocker).check()


def test_get_storage_follows_settings(tmp_path, monkeypatch):
    first = get_storage()
    assert isinstance(first, LocalStorage)
    assert first.root == get_settings().blob_dir.resolve()
    assert first.root.is_dir()

    monkeypatch.setenv('SECONDOPINION_DATA_DIR', str(tmp_path / 'other-data'))
    reset_settings()
    second = get_storage()

    assert isinstance(second, LocalStorage)
    assert second.root == (tmp_path / 'other-data' / 'blobs').resolve()
    assert second.root.is_dir()
