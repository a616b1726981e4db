"""Chunked uploads of large studies: files staged one request at a time, then ingested together.

The browser announces the files of an upload (names and sizes), sends each file in its own
request, a few at a time, and finally requests the commit, which hands every staged file to
`studies.add_files` in one all-or-nothing call. Until then nothing is in the database or the blob
storage: the files wait in `data_dir/uploads/<upload id>/`, which the commit, a cancel or the
stale-upload sweep removes. The server checks both size limits itself, when the upload starts and
again while each file arrives, because the browser's own checks can be bypassed.

NOTE: the staging folder is local to the app instance, so with several instances the upload
requests of one browser must reach the same instance (session affinity).
"""

from __future__ import annotations

import json
import threading
import logging
import os
import shutil
import time
import uuid
from collections import OrderedDict
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

from ..config import get_settings
from ..db import session_scope
from . import access, audit, sessions, studies
from .actors import Actor
from ..i18n import N_
from .errors import NotFoundError, ValidationError

logger = logging.getLogger(__name__)

MANIFEST_NAME = 'manifest.json'
COMMITTING_SUFFIX = '.committing'
# A staged upload with no file written for this long is abandoned (a closed tab, a lost connection).
STALE_AFTER_SECONDS = 2 * 60 * 60
MAX_NAME_CHARACTERS = 1000
# Free space kept on the staging disk beyond the announced bytes, for the database and other uploads.
DISK_RESERVE_BYTES = 512 * 1024 * 1024
UPLOAD_NOT_FOUND = N_('Upload')
MANIFEST_CACHE_SIZE = 64  # uploads whose parsed manifest is kept in memory
# How long a file request reuses the session that an earlier request of the same upload resolved.
# A session that ends (sign-out, deactivation, another instance's revocation) is dropped at once by
# the revocation listener below, so this bounds only how late an idle timeout or expiry is noticed.
SESSION_RECHECK_SECONDS = 5.0
RESOLVED_SESSIONS_MAX = 1000


class FileTooLargeError(ValidationError):
    """A file's body is larger than the size announced for it."""


@dataclass(frozen=True)
class AnnouncedFile:
    """A file the browser is about to send: its name (a relative path for a folder) and its size in bytes."""

    name: str
    size: int


@dataclass(frozen=True)
class FileSlot:
    """Location and expected size of one announced file of an upload."""

    upload_id: str
    index: int
    name: str
    size: int
    partial_path: Path
    path: Path


@dataclass(frozen=True)
class _Manifest:
    examination_id: str
    user_id: int
    session_id: str
    folder: bool
    files: list[AnnouncedFile]


_manifests: OrderedDict[str, _Manifest] = OrderedDict()
_manifests_lock = threading.Lock()


def staging_root() -> Path:
    return get_settings().data_dir / 'uploads'


def start_upload(*, actor: Actor, examination_id: str, files: list[AnnouncedFile], session_id: str,
                 folder: bool = False) -> str:
    """Check the announced files against the limits and open a staging folder; return the upload id.

    `session_id` identifies the browser session that started the upload; only that session may
    send its files (see `session_actor`). `folder` marks the files of a chosen folder (a CD copied
    to disk): at the commit, files in it
    that are not DICOM are skipped rather than refused, as in a zip of the CD.
    """
    settings = get_settings()
    if not files:
        raise ValidationError(N_('No files were chosen. Choose DICOM files, a folder of the CD or a .zip of it.'),
                              field='files')
    if len(files) > settings.max_files_per_upload:
        raise ValidationError(N_('{count} files were chosen, more than the {maximum} that one upload can take. '
                                 'Upload the study in parts, or as a .zip of the CD.'),
                              field='files', count=f'{len(files):,}', maximum=f'{settings.max_files_per_upload:,}')
    too_large = [file for file in files if file.size > settings.max_file_bytes]
    if too_large:
        names = ', '.join(file.name for file in too_large[:studies.MAX_NAMES_IN_MESSAGE])
        raise ValidationError(N_('Larger than the limit of {limit} per file: {names}. Remove these files and '
                                 'upload again.'), field='files', limit=studies.format_bytes(settings.max_file_bytes),
                              names=names)
    announced = sum(file.size for file in files)
    with session_scope() as session:
        access.get_own_draft(session, actor, examination_id)
        stored = studies.dicom_bytes(session, examination_id)
    if stored + announced > settings.max_examination_bytes:
        raise ValidationError(N_('These files have {size} and the examination already has {stored} of images, '
                                 'more than the limit of {limit} per examination. Upload fewer images.'),
                              field='files', size=studies.format_bytes(announced),
                              stored=studies.format_bytes(stored),
                              limit=studies.format_bytes(settings.max_examination_bytes))

    root = staging_root()
    root.mkdir(parents=True, exist_ok=True)
    if shutil.disk_usage(root).free < announced + DISK_RESERVE_BYTES:
        logger.error('no disk space to stage %d bytes for examination %s', announced, examination_id)
        raise ValidationError(N_('The server has no room for these files at the moment. Please try again later; '
                                 'the practice has been told.'), field='files')

    upload_id = uuid.uuid4().hex
    folder_path = root / upload_id
    folder_path.mkdir()
    manifest = {'examination_id': examination_id, 'user_id': actor.user_id, 'session_id': session_id, 'folder': folder,
                'files': [[file.name[-MAX_NAME_CHARACTERS:], file.size] for file in files]}
    (folder_path / MANIFEST_NAME).write_text(json.dumps(manifest), encoding='utf-8')
    logger.info('upload %s started by user %s for examination %s: %d files, %d bytes%s', upload_id,
                actor.user_id, examination_id, len(files), announced, ' (folder)' if folder else '')
    return upload_id


# Sessions resolved by file requests: (upload id, session token digest) -> (monotonic time, actor). An
# upload of a CT series sends up to thousands of file requests, and resolving the session takes three
# SQL queries per request, the largest part of a file request's time (bench/upload.py).
_resolved_sessions: dict[tuple[str, str], tuple[float, Actor]] = {}
_resolved_sessions_lock = threading.Lock()


def _forget_ended_sessions(session_ids: frozenset[int]) -> None:
    with _resolved_sessions_lock:
        for key in [key for key, (_, actor) in _resolved_sessions.items() if actor.session_id in session_ids]:
            del _resolved_sessions[key]


sessions.add_revocation_listener(_forget_ended_sessions)


def _resolve_session(upload_id: str, session_token: str | None) -> Actor | None:
    """Return the actor of the session cookie, reusing a resolution of the same upload younger than 5 s."""
    if not session_token:
        return None
    key = (upload_id, sessions.digest(session_token))
    now = time.monotonic()
    with _resolved_sessions_lock:
        resolved = _resolved_sessions.get(key)
        if resolved is not None and now - resolved[0] < SESSION_RECHECK_SECONDS:
            return resolved[1]

    actor = sessions.resolve(session_token)
    if actor is None:
        return None
    with _resolved_sessions_lock:
        _resolved_sessions[key] = (now, actor)
        if len(_resolved_sessions) > RESOLVED_SESSIONS_MAX:
            for old in [old for old, (at, _) in _resolved_sessions.items() if now - at >= SESSION_RECHECK_SECONDS]:
                del _resolved_sessions[old]
    return actor


def clear_resolved_sessions() -> None:
    """Forget every resolved session, for tests that start a new database."""
    with _resolved_sessions_lock:
        _resolved_sessions.clear()


def session_actor(*, upload_id: str, session_id: str | None, session_token: str | None) -> Actor:
    """Return the account that started the upload, when the request comes from the browser that started it.

    The file requests of an upload are served before the app's session handling, so they are
    authorized here: the browser id recorded at the start must match, and the session cookie must
    belong to a live session of the same account.
    """
    manifest = _load_manifest(_upload_folder(upload_id))
    if not session_id or manifest.session_id != session_id:
        logger.warning('upload %s: a file request came from another browser session', upload_id)
        raise NotFoundError(UPLOAD_NOT_FOUND)
    actor = _resolve_session(upload_id, session_token)
    if actor is None or actor.user_id != manifest.user_id:
        logger.info('upload %s: a file request came without a live session of its owner', upload_id)
        raise NotFoundError(UPLOAD_NOT_FOUND)
    return actor


def open_file_slot(*, actor: Actor, upload_id: str, index: int) -> FileSlot:
    """Return where file `index` of the actor's upload goes. Sending the same index again replaces the file."""
    folder_path = _upload_folder(upload_id)
    manifest = _read_manifest(folder_path, actor)
    if not 0 <= index < len(manifest.files):
        raise NotFoundError(UPLOAD_NOT_FOUND)
    announced = manifest.files[index]
    return FileSlot(upload_id=upload_id, index=index, name=announced.name, size=announced.size,
                    partial_path=folder_path / f'{index:06d}.part', path=folder_path / f'{index:06d}')


def check_declared_length(slot: FileSlot, length: int) -> None:
    """Reject a request whose declared body length differs from the size announced for the file."""
    if length > slot.size:
        raise _too_large_error(slot)
    if length < slot.size:
        raise ValidationError(N_('{name} has {length} bytes, not the {size} announced. Choose the files again and '
                                 'upload.'), field='files', name=slot.name, length=f'{length:,}',
                              size=f'{slot.size:,}')


def _too_large_error(slot: FileSlot) -> FileTooLargeError:
    return FileTooLargeError(N_('{name} is larger than the {size} announced for it. Choose the files again and '
                                'upload.'), field='files', name=slot.name, size=studies.format_bytes(slot.size))


async def receive_file(slot: FileSlot, chunks: AsyncIterator[bytes]) -> None:
    """Write the request body of one file to its slot, checking it has exactly the announced size.

    The file gets its final name only when complete, so an interrupted request leaves no partial
    file behind: any error, a dropped connection included, deletes what was written.
    """
    written = 0
    try:
        try:
            output_file = slot.partial_path.open('wb')
        except FileNotFoundError:
            raise NotFoundError(UPLOAD_NOT_FOUND) from None  # cancelled, committed or swept meanwhile
        with output_file as output:
            async for chunk in chunks:
                written += len(chunk)
                if written > slot.size:
                    raise _too_large_error(slot)
                output.write(chunk)
        if written != slot.size:
            raise ValidationError(N_('{name} arrived incomplete ({written} of {size} bytes). Upload it again.'),
                                  field='files', name=slot.name, written=f'{written:,}', size=f'{slot.size:,}')
        try:
            os.replace(slot.partial_path, slot.path)
        except FileNotFoundError:
            raise NotFoundError(UPLOAD_NOT_FOUND) from None
    except BaseException as error:
        slot.partial_path.unlink(missing_ok=True)
        logger.info('upload %s: file %d not stored after %d bytes: %s', slot.upload_id, slot.index, written,
                    type(error).__name__)
        raise


def commit_upload(*, actor: Actor, upload_id: str) -> studies.UploadSummary:
    """Ingest every file of the upload into the examination, all or nothing, and remove the staging folder.

    Raises ValidationError naming the files that never arrived, or those that `add_files` refused.
    A second commit of the same upload finds nothing and raises NotFoundError.
    """
    folder_path = _upload_folder(upload_id)
    manifest = _read_manifest(folder_path, actor)
    claimed = folder_path.with_name(upload_id + COMMITTING_SUFFIX)
    try:
        folder_path.rename(claimed)  # atomic, so a repeated commit request cannot ingest the files twice
    except FileNotFoundError:
        raise NotFoundError(UPLOAD_NOT_FOUND) from None
    started = time.monotonic()
    try:
        files = [(announced.name, claimed / f'{index:06d}') for index, announced in enumerate(manifest.files)]
        missing = [name for name, path in files if not path.is_file()]
        if missing:
            raise ValidationError(N_('{missing} of the {count} files did not arrive: {names}. Choose the files '
                                     'again and upload.'), field='files', missing=f'{len(missing):,}',
                                  count=f'{len(files):,}', names=studies.name_list(missing))
        # The staging folder is deleted below whatever the outcome, so its files may be moved into storage.
        summary = studies.add_files(actor=actor, examination_id=manifest.examination_id, files=files,
                                    folder=manifest.folder, move_files=True)
    except Exception as error:
        logger.info('upload %s for examination %s not committed: %s', upload_id, manifest.examination_id,
                    type(error).__name__)
        raise
    finally:
        shutil.rmtree(claimed, ignore_errors=True)
    logger.info('upload %s committed to examination %s in %.1f s', upload_id, manifest.examination_id,
                time.monotonic() - started)
    return summary


def cancel_upload(*, actor: Actor, upload_id: str) -> None:
    """Delete the staged files of the actor's upload. A missing or finished upload is not an error."""
    try:
        folder_path = _upload_folder(upload_id)
        _read_manifest(folder_path, actor)
    except NotFoundError:
        return
    shutil.rmtree(folder_path, ignore_errors=True)
    logger.info('upload %s cancelled by user %s', upload_id, actor.user_id)


def sweep_stale_uploads(*, older_than_seconds: float = STALE_AFTER_SECONDS) -> int:
    """Delete staging folders in which nothing was written for `older_than_seconds`; return how many."""
    root = staging_root()
    if not root.is_dir():
        return 0
    cutoff = time.time() - older_than_seconds
    removed = 0
    for folder_path in root.iterdir():
        if folder_path.name.endswith(COMMITTING_SUFFIX) and older_than_seconds > 0:
            continue  # a commit in progress removes its own folder
        try:
            last_write = max((entry.stat().st_mtime for entry in folder_path.iterdir()),
                             default=folder_path.stat().st_mtime)
        except OSError:
            continue  # removed by its commit or cancel meanwhile
        if last_write < cutoff:
            shutil.rmtree(folder_path, ignore_errors=True)
            removed += 1
            logger.info('stale upload %s removed', folder_path.name)
    return removed


def discard_uploads_of_user(user_id: int) -> int:
    """Delete the staging folders of every unfinished upload of the user (their account was deleted); return how many.

    Folders of commits in progress are left alone: their commit fails, because the examination is no
    longer a draft, and removes them.
    """
    root = staging_root()
    if not root.is_dir():
        return 0
    removed = 0
    for folder_path in root.iterdir():
        if folder_path.name.endswith(COMMITTING_SUFFIX):
            continue
        try:
            manifest = _load_manifest(folder_path)
        except (NotFoundError, OSError, ValueError, KeyError):
            continue  # removed meanwhile, or not an upload folder
        if manifest.user_id == user_id:
            shutil.rmtree(folder_path, ignore_errors=True)
            removed += 1
            logger.info('upload %s of deleted user %s removed', folder_path.name, user_id)
    return removed


def _upload_folder(upload_id: str) -> Path:
    if len(upload_id) != 32 or not all(character in '0123456789abcdef' for character in upload_id):
        raise NotFoundError(UPLOAD_NOT_FOUND)
    return staging_root() / upload_id


def _read_manifest(folder_path: Path, actor: Actor) -> _Manifest:
    """Read the manifest of the actor's own upload. Someone else's upload is reported as not found."""
    manifest = _load_manifest(folder_path)
    if manifest.user_id != actor.user_id:
        logger.warning('user %s requested upload %s of another user', actor.user_id, folder_path.name)
        audit.record_denied(actor, 'upload', folder_path.name, examination_id=manifest.examination_id)
        raise NotFoundError(UPLOAD_NOT_FOUND)
    return manifest


def _load_manifest(folder_path: Path) -> _Manifest:
    """Return the manifest of an upload, parsed once per process, because each of its file requests needs it.

    A manifest never changes once written. A cached one may outlive its folder, and then writing a
    file or committing finds the folder missing and raises NotFoundError.
    """
    manifest = _manifests.get(folder_path.name)
    if manifest is not None:
        return manifest
    try:
        data = json.loads((folder_path / MANIFEST_NAME).read_text(encoding='utf-8'))
    except (FileNotFoundError, NotADirectoryError):
        raise NotFoundError(UPLOAD_NOT_FOUND) from None
    manifest = _Manifest(examination_id=data['examination_id'], user_id=data['user_id'],
                         session_id=data['session_id'], folder=data['folder'],
                         files=[AnnouncedFile(name, size) for name, size in data['files']])
    with _manifests_lock:
        _manifests[folder_path.name] = manifest
        while len(_manifests) > MANIFEST_CACHE_SIZE:
            _manifests.popitem(last=False)
    return manifest
