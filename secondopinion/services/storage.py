"""Blob storage for uploaded files, thumbnails and reports, addressed by keys like `exams/<id>/files/<uuid>.dcm`.

`LocalStorage` keeps blobs in a folder, and `storage_azure.AzureBlobStorage` in an Azure Blob Storage
container. Both implement the `BlobStorage` protocol, so callers only ever see keys, never paths.
"""

from __future__ import annotations

import errno
import logging
import os
import re
import tempfile
import uuid
from collections.abc import Iterable, Iterator
from functools import lru_cache
from pathlib import Path
from typing import BinaryIO, Protocol

from ..config import get_settings

logger = logging.getLogger(__name__)

CHUNK_SIZE = 1024 * 1024
MAX_KEY_LENGTH = 300  # the length of the key columns in the database
KEY_SEGMENT_PATTERN = re.compile(r'^[A-Za-z0-9_-][A-Za-z0-9._-]*$')
TEMP_PREFIX = '.tmp-'


class InvalidKeyError(ValueError):
    """A storage key that is empty, too long, absolute, or contains `..` or characters outside `[A-Za-z0-9._/-]`."""


def validate_key(key: str) -> str:
    """Return the key unchanged, or raise InvalidKeyError.

    Segments may not start with a dot, which rules out `.` and `..` and keeps keys apart from the
    `.tmp-` files that `LocalStorage.save` writes next to the final file.
    """
    if not key or len(key) > MAX_KEY_LENGTH:
        raise InvalidKeyError(f'Storage key {key!r} must have 1 to {MAX_KEY_LENGTH} characters.')
    if key.startswith('/'):
        raise InvalidKeyError(f'Storage key {key!r} must be relative, not start with "/".')
    for segment in key.split('/'):
        if not KEY_SEGMENT_PATTERN.match(segment):
            raise InvalidKeyError(
                f'Storage key {key!r} is invalid: each part between "/" must be non-empty, must not start with '
                f'a dot, and may only contain letters, digits, ".", "_" and "-".')
    return key


class BlobStorage(Protocol):
    """Key-based blob storage. Reading a missing key raises FileNotFoundError."""

    def save(self, key: str, chunks: Iterable[bytes]) -> int:
        """Write the chunks under the key, replacing any blob there, and return the number of bytes written.

        Readers see either the old blob or the complete new one, never a partial file.
        """
        ...

    def save_file(self, key: str, path: Path) -> int:
        """Copy a local file into the storage under the key and return its size in bytes."""
        ...

    def move_file(self, key: str, path: Path) -> int:
        """Store a local file under the key like save_file and delete the local file. Return its size in bytes.

        Local storage renames the file into place when it is on the same filesystem, so its bytes are not copied.
        """
        ...

    def open(self, key: str) -> BinaryIO:
        """Open the blob for binary reading. The caller closes the file."""
        ...

    def iter_chunks(self, key: str, chunk_size: int = CHUNK_SIZE) -> Iterator[bytes]:
        """Yield the blob's content in chunks of at most chunk_size bytes."""
        ...

    def delete(self, key: str) -> None:
        """Delete the blob. Deleting a missing key does nothing."""
        ...

    def exists(self, key: str) -> bool:
        ...

    def size(self, key: str) -> int:
        """Return the blob's size in bytes."""
        ...

    def check(self) -> None:
        """Write, read back and delete a probe blob, and raise OSError when any step fails."""
        ...


def iter_file_chunks(path: Path, chunk_size: int = CHUNK_SIZE) -> Iterator[bytes]:
    """Yield a local file's content in chunks of at most chunk_size bytes."""
    with path.open('rb') as file:
        while chunk := file.read(chunk_size):
            yield chunk


class LocalStorage:
    """Blob storage in a local folder, where each key is a relative file path."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def __repr__(self) -> str:
        return f'LocalStorage({str(self.root)!r})'

    def _path(self, key: str) -> Path:
        return self.root / validate_key(key)

    def save(self, key: str, chunks: Iterable[bytes]) -> int:
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        # The temporary file lives in the target folder so os.replace is an atomic rename on one filesystem.
        descriptor, temp_name = tempfile.mkstemp(prefix=TEMP_PREFIX, dir=path.parent)
        written = 0
        try:
            with os.fdopen(descriptor, 'wb') as file:
                for chunk in chunks:
                    file.write(chunk)
                    written += len(chunk)
                file.flush()
                os.fsync(file.fileno())
            os.replace(temp_name, path)
        except BaseException:
            Path(temp_name).unlink(missing_ok=True)
            raise
        return written

    def save_file(self, key: str, path: Path) -> int:
        return self.save(key, iter_file_chunks(path))

    def move_file(self, key: str, path: Path) -> int:
        target = self._path(key)
        target.parent.mkdir(parents=True, exist_ok=True)
        # The same guarantees as save: owner-only mode as mkstemp creates it, the bytes on disk before the
        # blob appears, and an atomic rename.
        os.chmod(path, 0o600)
        with path.open('rb') as file:
            size = os.fstat(file.fileno()).st_size
            os.fsync(file.fileno())
        try:
            os.replace(path, target)
        except OSError as error:
            if error.errno != errno.EXDEV:
                raise
            size = self.save(key, iter_file_chunks(path))  # another filesystem, so copy
            path.unlink()
        return size

    def open(self, key: str) -> BinaryIO:
        return self._path(key).open('rb')

    def iter_chunks(self, key: str, chunk_size: int = CHUNK_SIZE) -> Iterator[bytes]:
        return iter_file_chunks(self._path(key), chunk_size)

    def delete(self, key: str) -> None:
        self._path(key).unlink(missing_ok=True)

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def size(self, key: str) -> int:
        return self._path(key).stat().st_size

    def check(self) -> None:
        key = f'healthz/{uuid.uuid4().hex}'
        payload = b'storage check'
        try:
            self.save(key, [payload])
            with self.open(key) as file:
                if file.read() != payload:
                    raise OSError(f'Storage folder {self.root} returned different bytes than were written.')
        finally:
            self.delete(key)


@lru_cache(maxsize=8)
def _local_storage(root: Path) -> LocalStorage:
    root.mkdir(parents=True, exist_ok=True)
    logger.info('local blob storage in %s', root)
    return LocalStorage(root)


@lru_cache(maxsize=8)
def _azure_storage(connection_string: str, container: str) -> BlobStorage:
    from .storage_azure import AzureBlobStorage  # imported here so the local backend never loads the Azure SDK

    storage = AzureBlobStorage(connection_string, container)
    logger.info('Azure blob storage in account %s, container %s', storage.account_name, container)
    return storage


def get_storage() -> BlobStorage:
    """Return the storage configured by the current settings.

    That is Azure Blob Storage when `azure_storage_connection_string` is set and not empty, else the
    local folder. Instances are cached per connection string and container, or per folder, so tests
    that change the settings get a new one.
    """
    settings = get_settings()
    connection_string = settings.azure_storage_connection_string
    if connection_string is not None and connection_string.get_secret_value():
        return _azure_storage(connection_string.get_secret_value(), settings.azure_storage_container)
    return _local_storage(settings.blob_dir.resolve())
