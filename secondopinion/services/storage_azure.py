"""Blob storage in an Azure Blob Storage container, implementing the `BlobStorage` protocol of `storage`.

Keys are blob names inside one container. `save` stages each block of up to `BLOCK_SIZE` bytes as it
arrives and commits the block list at the end. So memory use stays near one block whatever the file
size, and readers see the old blob or the complete new one.
"""

from __future__ import annotations

import io
import logging
import re
import threading
import uuid
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, BinaryIO

from azure.core.exceptions import AzureError, ResourceExistsError, ResourceNotFoundError
from azure.storage.blob import BlobClient, BlobServiceClient, StorageStreamDownloader

from .storage import CHUNK_SIZE, iter_file_chunks, validate_key

logger = logging.getLogger(__name__)

BLOCK_SIZE = 4 * 1024 * 1024
# Bytes per download request. The SDK's default first request is 32 MiB, which open() would hold in memory.
# NOTE: azure-storage-blob 12.31 joins each response with `b''.join(list(stream))`, and list() preallocates one
# 8-byte slot per byte of Content-Length, so each request briefly takes about 9 times its size. At 1 MiB that
# is about 9 MiB per download in progress. Larger requests mean fewer round trips but more memory.
DOWNLOAD_CHUNK_SIZE = 1024 * 1024
# Azure container names: 3 to 63 lowercase letters, digits and single hyphens, starting and ending with a letter or digit.
CONTAINER_NAME_PATTERN = re.compile(r'^(?=.{3,63}$)[a-z0-9]+(-[a-z0-9]+)*$')


class _BlobReader(io.RawIOBase):
    """A read-only, non-seekable file over the chunks of a blob download, fetched one request at a time."""

    def __init__(self, key: str, chunks: Iterator[bytes]) -> None:
        self._key = key
        self._chunks = chunks
        self._pending = memoryview(b'')

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:  # type: ignore[override]
        while not self._pending:
            try:
                chunk = next(self._chunks)
            except StopIteration:
                return 0
            except ResourceNotFoundError as error:
                raise FileNotFoundError(f'Blob {self._key!r} was deleted while it was being read.') from error
            except AzureError as error:
                raise OSError(f'Reading blob {self._key!r} from Azure failed: {error}') from error
            self._pending = memoryview(chunk)
        count = min(len(buffer), len(self._pending))
        buffer[:count] = self._pending[:count]
        self._pending = self._pending[count:]
        return count

    def close(self) -> None:
        self._pending = memoryview(b'')
        self._chunks = iter(())
        super().close()


class AzureBlobStorage:
    """Blob storage in one Azure Blob Storage container, created on first use when missing."""

    def __init__(self, connection_string: str, container: str, **client_options: Any) -> None:
        """Connect lazily: no request is sent until the first storage call.

        client_options go to `BlobServiceClient.from_connection_string`, for example `retry_total=0`.
        """
        if not CONTAINER_NAME_PATTERN.match(container):
            raise ValueError(f'Azure container name {container!r} is invalid: use 3 to 63 lowercase letters, digits '
                             f'and single hyphens, starting and ending with a letter or digit.')
        self.container = container
        options = {'max_single_get_size': DOWNLOAD_CHUNK_SIZE, 'max_chunk_get_size': DOWNLOAD_CHUNK_SIZE,
                   **client_options}
        # Raises ValueError for a malformed connection string, without echoing the string.
        self._service = BlobServiceClient.from_connection_string(connection_string, **options)
        self._container_client = self._service.get_container_client(container)
        self._container_ready = False
        self._container_lock = threading.Lock()
        self.account_name = self._service.account_name

    def __repr__(self) -> str:
        return f'AzureBlobStorage(account={self.account_name!r}, container={self.container!r})'

    def _blob(self, key: str) -> BlobClient:
        return self._container_client.get_blob_client(validate_key(key))

    def ensure_container(self) -> None:
        """Create the container unless it exists. Later calls return at once after the first success."""
        if self._container_ready:
            return
        with self._container_lock:
            if self._container_ready:
                return
            if not self._container_client.exists():
                try:
                    self._container_client.create_container()
                    logger.info('created Azure blob container %s in account %s', self.container, self.account_name)
                except ResourceExistsError:
                    pass  # another process created it in the meantime
            self._container_ready = True

    def save(self, key: str, chunks: Iterable[bytes]) -> int:
        blob = self._blob(key)
        self.ensure_container()
        # Block ids must have the same length for every block of a blob, including other uploads' staged blocks.
        upload_id = uuid.uuid4().hex
        block_ids: list[str] = []
        buffer = bytearray()
        written = 0

        def stage(data: bytes) -> None:
            block_id = f'{upload_id}-{len(block_ids):08d}'
            blob.stage_block(block_id, data, length=len(data))
            block_ids.append(block_id)

        try:
            for chunk in chunks:
                buffer += chunk
                written += len(chunk)
                while len(buffer) >= BLOCK_SIZE:
                    stage(bytes(buffer[:BLOCK_SIZE]))
                    del buffer[:BLOCK_SIZE]
            if buffer:
                stage(bytes(buffer))
            # Committing an empty list creates an empty blob. Only this call makes the blob visible.
            blob.commit_block_list(block_ids)
        except BaseException as error:
            # Staged blocks that were never committed are not readable. The service deletes them on its own later.
            logger.warning('upload of blob %s to container %s failed after %d bytes: %r',
                           key, self.container, written, error)
            raise
        return written

    def save_file(self, key: str, path: Path) -> int:
        return self.save(key, iter_file_chunks(path))

    def move_file(self, key: str, path: Path) -> int:
        size = self.save_file(key, path)
        path.unlink()
        return size

    def _download(self, key: str) -> StorageStreamDownloader:
        """Start a download, whose first request returns at most DOWNLOAD_CHUNK_SIZE bytes."""
        blob = self._blob(key)
        try:
            return blob.download_blob()
        except ResourceNotFoundError as error:
            raise FileNotFoundError(f'Blob {key!r} not found in Azure container {self.container!r}.') from error

    def open(self, key: str) -> BinaryIO:
        downloader = self._download(key)
        reader = _BlobReader(key, iter(downloader.chunks()))
        return io.BufferedReader(reader, buffer_size=CHUNK_SIZE)  # type: ignore[return-value]

    def iter_chunks(self, key: str, chunk_size: int = CHUNK_SIZE) -> Iterator[bytes]:
        # The download starts here, not at the first next(), so a missing blob raises before streaming begins.
        file = self.open(key)
        return self._read_chunks(file, chunk_size)

    @staticmethod
    def _read_chunks(file: BinaryIO, chunk_size: int) -> Iterator[bytes]:
        with file:
            while chunk := file.read(chunk_size):
                yield chunk

    def delete(self, key: str) -> None:
        try:
            self._blob(key).delete_blob()
        except ResourceNotFoundError:
            pass  # a missing blob or container means there is nothing to delete

    def exists(self, key: str) -> bool:
        return self._blob(key).exists()

    def size(self, key: str) -> int:
        blob = self._blob(key)
        try:
            return blob.get_blob_properties().size
        except ResourceNotFoundError as error:
            raise FileNotFoundError(f'Blob {key!r} not found in Azure container {self.container!r}.') from error

    def check(self) -> None:
        key = f'healthz/{uuid.uuid4().hex}'
        payload = b'storage check'
        try:
            self.ensure_container()
            try:
                self.save(key, [payload])
                with self.open(key) as file:
                    if file.read() != payload:
                        raise OSError(f'Azure container {self.container!r} returned different bytes than were '
                                      f'written.')
            finally:
                self.delete(key)
        except AzureError as error:
            raise OSError(f'Azure container {self.container!r} in account {self.account_name!r} is not usable: '
                          f'{error}') from error
