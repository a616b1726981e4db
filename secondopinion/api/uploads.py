"""HTTP routes of the chunked study upload that the page's uploader drives (see services/uploads.py).

POST /api/exams/{id}/uploads announces the files, PUT /api/uploads/{upload}/files/{index} sends one
file as the raw request body, POST /api/uploads/{upload}/commit ingests them all, and DELETE
/api/uploads/{upload} drops an unfinished upload. Errors are returned as JSON `{"detail": message}`,
where the message is written for the patient.

The PUT requests carry the bytes, so they are served by `FileRequests` in front of NiceGUI's
middleware stack: each of those middlewares handled every received body chunk, which halved the
throughput (bench/upload.py). Starlette's own SessionMiddleware still reads the signed session
cookie there, and only the browser session that started an upload may send its files.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Callable

from fastapi.responses import JSONResponse, Response
from nicegui import app
from pydantic import BaseModel, Field
from starlette.middleware.sessions import SessionMiddleware
from starlette.requests import ClientDisconnect, Request
from starlette.types import ASGIApp, Receive, Scope, Send

from .. import i18n
from ..config import get_settings
from ..services import metrics, sessions, studies, uploads
from ..services.errors import ConflictError, DomainError, NotFoundError
from .routes import current_actor

logger = logging.getLogger(__name__)

FILE_PATH = re.compile(r'/api/uploads/(?P<upload_id>[^/]+)/files/(?P<index>\d{1,6})')
# The key under which NiceGUI keeps its browser id in the session cookie (app.storage.browser['id']).
BROWSER_ID_KEY = 'id'


class AnnouncedFileIn(BaseModel):
    name: str = Field(min_length=1, max_length=4096)
    size: int = Field(ge=0)


class StartUploadIn(BaseModel):
    folder: bool = False
    files: list[AnnouncedFileIn]


def _error(error: DomainError, language: str | None = None) -> JSONResponse:
    """Return the error as JSON in `language`, or in English when it is None, with the rejected files' reasons."""
    if isinstance(error, uploads.FileTooLargeError):
        status = 413
    elif isinstance(error, NotFoundError):
        status = 404
    elif isinstance(error, ConflictError):
        status = 409
    else:
        status = 400
    with i18n.use_language(language):
        body: dict[str, object] = {'detail': i18n.error_message(error)}
        if isinstance(error, studies.FilesRejectedError):
            body['files'] = [{'name': name, 'reason': i18n.translate(reason)} for name, reason in error.files]
    return JSONResponse(body, status_code=status)


def register_upload_routes() -> None:
    @app.post('/api/exams/{examination_id}/uploads', include_in_schema=False)
    def start(request: Request, examination_id: str, body: StartUploadIn) -> JSONResponse:
        actor = current_actor(request)
        files = [uploads.AnnouncedFile(file.name, file.size) for file in body.files]
        try:
            upload_id = uploads.start_upload(actor=actor, examination_id=examination_id, files=files,
                                             session_id=app.storage.browser[BROWSER_ID_KEY], folder=body.folder)
        except DomainError as error:
            return _error(error, actor.language)
        return JSONResponse({'upload_id': upload_id}, status_code=201)

    @app.post('/api/uploads/{upload_id}/commit', include_in_schema=False)
    def commit(request: Request, upload_id: str) -> JSONResponse:
        actor = current_actor(request)
        try:
            summary = uploads.commit_upload(actor=actor, upload_id=upload_id)
        except DomainError as error:
            return _error(error, actor.language)
        return JSONResponse({'accepted': summary.accepted, 'duplicates': summary.duplicates,
                             'skipped': summary.skipped_count, 'studies': summary.study_count,
                             'series': summary.series_count})

    @app.delete('/api/uploads/{upload_id}', include_in_schema=False)
    def cancel(request: Request, upload_id: str) -> Response:
        actor = current_actor(request)
        uploads.cancel_upload(actor=actor, upload_id=upload_id)
        return Response(status_code=204)

    # Starlette builds the middleware stack on the first request; wrap whatever it builds, once.
    if not getattr(app, '_serves_upload_files', False):
        build_stack: Callable[[], ASGIApp] = app.build_middleware_stack
        app.build_middleware_stack = lambda: FileRequests(build_stack())  # type: ignore[method-assign]
        app._serves_upload_files = True  # type: ignore[attr-defined]


class FileRequests:
    """ASGI wrapper that serves `PUT /api/uploads/{upload}/files/{index}` itself and passes on everything else."""

    def __init__(self, inner: ASGIApp) -> None:
        self.inner = inner
        self.put_file = SessionMiddleware(_put_file, secret_key=get_settings().storage_secret.get_secret_value())

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope['type'] == 'http' and scope['method'] == 'PUT' and FILE_PATH.fullmatch(scope['path']):
            await self.put_file(scope, receive, send)
        else:
            await self.inner(scope, receive, send)


def _open_slot(upload_id: str, index: int, session_id: str | None, token: str | None) -> uploads.FileSlot:
    actor = uploads.session_actor(upload_id=upload_id, session_id=session_id, session_token=token)
    return uploads.open_file_slot(actor=actor, upload_id=upload_id, index=index)


async def _put_file(scope: Scope, receive: Receive, send: Send) -> None:
    match = FILE_PATH.fullmatch(scope['path'])
    assert match is not None
    upload_id, index = match['upload_id'], int(match['index'])
    request = Request(scope, receive)
    try:
        slot = await asyncio.to_thread(_open_slot, upload_id, index, scope['session'].get(BROWSER_ID_KEY),
                                       request.cookies.get(sessions.COOKIE_NAME))
        declared = request.headers.get('content-length')
        if declared is not None and declared.isdigit():
            # Checked before a byte is read, so a wrong or oversized body costs no disk or time.
            uploads.check_declared_length(slot, int(declared))
        await uploads.receive_file(slot, request.stream())
    except ClientDisconnect:
        logger.info('upload %s: browser disconnected while sending file %d', upload_id, index)
        response: Response = Response(status_code=400)
    except DomainError as error:
        # NOTE: the actor is not known here when the slot failed to open, so the browser's language is used.
        response = _error(error, i18n.negotiate(request.headers.get('accept-language')))
    except Exception:
        logger.exception('upload %s: file %d failed', upload_id, index)
        response = JSONResponse({'detail': 'The server could not store this file. Please try again.'},
                                status_code=500)
    else:
        metrics.add_upload_bytes(slot.size)
        response = Response(status_code=204, headers={'Cache-Control': 'no-store'})
    await response(scope, receive, send)
