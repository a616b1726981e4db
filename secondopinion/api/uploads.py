"""HTTP routes of the chunked study upload that the page's uploader drives (see services/uploads.py).

POST /api/exams/{id}/uploads announces the files, PUT /api/uploads/{upload}/files/{index} sends one
file as the raw request body, POST /api/uploads/{upload}/commit ingests them all, and DELETE
/api/uploads/{upload} drops an unfinished upload. Errors answer with JSON `{"detail": message}`,
where the message is written for the patient.
"""

from __future__ import annotations

import asyncio
import logging

from fastapi import Request
from fastapi.responses import JSONResponse, Response
from nicegui import app
from pydantic import BaseModel, Field
from starlette.requests import ClientDisconnect

from ..services import uploads
from ..services.errors import ConflictError, DomainError, NotFoundError
from .routes import current_actor

logger = logging.getLogger(__name__)


class AnnouncedFileIn(BaseModel):
    name: str = Field(min_length=1, max_length=4096)
    size: int = Field(ge=0)


class StartUploadIn(BaseModel):
    folder: bool = False
    files: list[AnnouncedFileIn]


def _error(error: DomainError) -> JSONResponse:
    if isinstance(error, NotFoundError):
        status = 404
    elif isinstance(error, ConflictError):
        status = 409
    else:
        status = 400
    return JSONResponse({'detail': str(error)}, status_code=status)


def register_upload_routes() -> None:
    @app.post('/api/exams/{examination_id}/uploads', include_in_schema=False)
    def start(examination_id: str, body: StartUploadIn) -> JSONResponse:
        actor = current_actor()
        files = [uploads.AnnouncedFile(file.name, file.size) for file in body.files]
        try:
            upload_id = uploads.start_upload(actor=actor, examination_id=examination_id, files=files,
                                             folder=body.folder)
        except DomainError as error:
            return _error(error)
        return JSONResponse({'upload_id': upload_id}, status_code=201)

    @app.put('/api/uploads/{upload_id}/files/{index}', include_in_schema=False)
    async def put_file(upload_id: str, index: int, request: Request) -> Response:
        actor = await asyncio.to_thread(current_actor)
        try:
            slot = uploads.open_file_slot(actor=actor, upload_id=upload_id, index=index)
            declared = request.headers.get('content-length')
            if declared is not None and declared.isdigit():
                # Checked before a byte is read, so a wrong or oversized body costs no disk or time.
                uploads.check_declared_length(slot, int(declared))
            await uploads.receive_file(slot, request.stream())
        except ClientDisconnect:
            logger.info('upload %s: browser disconnected while sending file %d', upload_id, index)
            return Response(status_code=400)
        except uploads.FileTooLargeError as error:
            return JSONResponse({'detail': str(error)}, status_code=413)
        except DomainError as error:
            return _error(error)
        return Response(status_code=204)

    @app.post('/api/uploads/{upload_id}/commit', include_in_schema=False)
    def commit(upload_id: str) -> JSONResponse:
        actor = current_actor()
        try:
            summary = uploads.commit_upload(actor=actor, upload_id=upload_id)
        except DomainError as error:
            return _error(error)
        return JSONResponse({'accepted': summary.accepted, 'duplicates': summary.duplicates,
                             'skipped': summary.skipped_count, 'studies': summary.study_count,
                             'series': summary.series_count})

    @app.delete('/api/uploads/{upload_id}', include_in_schema=False)
    def cancel(upload_id: str) -> Response:
        actor = current_actor()
        uploads.cancel_upload(actor=actor, upload_id=upload_id)
        return Response(status_code=204)
