"""Downloads and images behind a share link's grant, for a patient's own physician without an account."""

from __future__ import annotations

import logging

from fastapi import HTTPException, Request
from fastapi.responses import Response, StreamingResponse
from nicegui import app

from ..services import reports, sharing, studies, viewer
from ..services.errors import NotFoundError, ValidationError
from .routes import _attachment

logger = logging.getLogger(__name__)


def _grant(request: Request, grant: str, what: str = '') -> sharing.Grant:
    try:
        return sharing.check_grant(grant, what=what, client_address=request.client.host if request.client else None)
    except NotFoundError:
        raise HTTPException(status_code=404, detail='Not found') from None


def _client(request: Request) -> str | None:
    return request.client.host if request.client else None


def register_sharing_routes() -> None:
    @app.get('/api/shared/{grant}/report.pdf', include_in_schema=False)
    def shared_report(request: Request, grant: str) -> StreamingResponse:
        opened = _grant(request, grant, 'report_downloaded')
        try:
            name, chunks = reports.open_report_pdf(actor=opened.actor(_client(request)),
                                                   examination_id=opened.examination_id)
        except NotFoundError:
            raise HTTPException(status_code=404, detail='Not found') from None
        return StreamingResponse(chunks, media_type='application/pdf', headers=_attachment(name))

    @app.get('/api/shared/{grant}/images.zip', include_in_schema=False)
    def shared_images(request: Request, grant: str) -> StreamingResponse:
        opened = _grant(request, grant, 'images_downloaded')
        try:
            name, chunks = studies.stream_images_zip(actor=opened.actor(_client(request)),
                                                     examination_id=opened.examination_id)
        except NotFoundError:
            raise HTTPException(status_code=404, detail='Not found') from None
        logger.info('images of examination %s streamed through share link %s', opened.examination_id, opened.link_id)
        return StreamingResponse(chunks, media_type='application/zip', headers=_attachment(name))

    @app.get('/api/shared/{grant}/series/{series_id}/slices/{index}.png', include_in_schema=False)
    def shared_slice(request: Request, grant: str, series_id: int, index: int, wc: float | None = None,
                     ww: float | None = None, preset: str | None = None) -> Response:
        opened = _grant(request, grant)
        try:
            data = viewer.render_slice(actor=opened.actor(_client(request)), examination_id=opened.examination_id,
                                       series_id=series_id, index=index, window_center=wc, window_width=ww,
                                       preset=preset or None)
        except NotFoundError:
            raise HTTPException(status_code=404, detail='Not found') from None
        except ValidationError as error:
            raise HTTPException(status_code=400, detail=str(error)) from None
        except viewer.PreviewUnavailableError as error:
            raise HTTPException(status_code=422, detail=str(error)) from None
        return Response(data, media_type='image/png', headers={'Cache-Control': 'private, no-store'})
