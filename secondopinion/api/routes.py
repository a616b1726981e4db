"""Plain HTTP routes: health check, image and report downloads, thumbnails."""

from __future__ import annotations

import logging
from urllib.parse import quote

from fastapi import HTTPException, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from nicegui import app

from ..db import ping
from ..services import audit, privacy, reports, sessions, standards, studies, viewer
from ..services.actors import Actor
from ..services.errors import NotFoundError, ValidationError
from ..services.storage import get_storage

logger = logging.getLogger(__name__)


def current_actor(request: Request) -> Actor:
    """Return the signed-in actor of this request; anyone else gets the same 404 as for a missing object."""
    audit.set_where(request.url.path)
    actor = sessions.resolve(request.cookies.get(sessions.COOKIE_NAME),
                             client_address=request.client.host if request.client else None)
    if actor is None:
        raise HTTPException(status_code=404, detail='Not found')
    return actor


def _attachment(name: str) -> dict[str, str]:
    return {'Content-Disposition': f"attachment; filename*=UTF-8''{quote(name)}",
            'Cache-Control': 'private, no-store'}


def register_routes() -> None:
    @app.get('/healthz', include_in_schema=False)
    def healthz() -> JSONResponse:
        checks = {}
        for name, check in (('database', ping), ('storage', lambda: get_storage().check())):
            try:
                check()
                checks[name] = 'ok'
            except Exception as error:  # noqa: BLE001 (any failure means unhealthy)
                logger.error('health check of %s failed: %s', name, error)
                checks[name] = 'failed'
        healthy = all(value == 'ok' for value in checks.values())
        return JSONResponse({'status': 'ok' if healthy else 'unavailable', **checks},
                            status_code=200 if healthy else 503)

    @app.get('/api/exams/{examination_id}/images.zip', include_in_schema=False)
    def download_images(request: Request, examination_id: str) -> StreamingResponse:
        actor = current_actor(request)
        try:
            name, chunks = studies.stream_images_zip(actor=actor, examination_id=examination_id)
        except NotFoundError:
            raise HTTPException(status_code=404, detail='Not found') from None
        logger.info('images of examination %s streamed to user %s', examination_id, actor.user_id)
        return StreamingResponse(chunks, media_type='application/zip', headers=_attachment(name))

    @app.get('/api/me/export.zip', include_in_schema=False)
    def export_my_data(request: Request) -> StreamingResponse:
        """Stream all data of the signed-in patient as one zip. Anyone else gets the same 404 as for a missing page."""
        actor = current_actor(request)
        try:
            name, chunks = privacy.export_patient_data(actor=actor)
        except NotFoundError:
            raise HTTPException(status_code=404, detail='Not found') from None
        return StreamingResponse(chunks, media_type='application/zip', headers=_attachment(name))

    @app.get('/api/exams/{examination_id}/report.pdf', include_in_schema=False)
    def download_report(request: Request, examination_id: str, version: int | None = None) -> StreamingResponse:
        actor = current_actor(request)
        try:
            name, chunks = reports.open_report_pdf(actor=actor, examination_id=examination_id, version=version)
        except NotFoundError:
            raise HTTPException(status_code=404, detail='Not found') from None
        return StreamingResponse(chunks, media_type='application/pdf', headers=_attachment(name))

    @app.get('/api/exams/{examination_id}/report.dcm', include_in_schema=False)
    def download_report_dicom(request: Request, examination_id: str) -> Response:
        """Serve the final report as an encapsulated-PDF DICOM file in the patient's study."""
        actor = current_actor(request)
        try:
            name, data = standards.export_report_dicom(actor=actor, examination_id=examination_id)
        except NotFoundError:
            raise HTTPException(status_code=404, detail='Not found') from None
        return Response(data, media_type='application/dicom', headers=_attachment(name))

    @app.get('/api/exams/{examination_id}/report.fhir.json', include_in_schema=False)
    def download_report_fhir(request: Request, examination_id: str) -> Response:
        """Serve the final report as a FHIR R4 DiagnosticReport with the PDF inline."""
        actor = current_actor(request)
        try:
            name, data = standards.export_report_fhir(actor=actor, examination_id=examination_id)
        except NotFoundError:
            raise HTTPException(status_code=404, detail='Not found') from None
        return Response(data, media_type='application/fhir+json', headers=_attachment(name))

    @app.get('/api/exams/{examination_id}/series/{series_id}/thumbnail.png', include_in_schema=False)
    def thumbnail(request: Request, examination_id: str, series_id: int) -> Response:
        actor = current_actor(request)
        try:
            data = studies.get_thumbnail(actor=actor, examination_id=examination_id, series_id=series_id)
        except NotFoundError:
            raise HTTPException(status_code=404, detail='Not found') from None
        return Response(data, media_type='image/png', headers={'Cache-Control': 'private, max-age=3600'})

    @app.get('/api/exams/{examination_id}/prior-report/{file_id}', include_in_schema=False)
    def prior_report(request: Request, examination_id: str, file_id: int) -> StreamingResponse:
        actor = current_actor(request)
        try:
            name, content_type, chunks = studies.open_prior_report(actor=actor, examination_id=examination_id,
                                                                   file_id=file_id)
        except NotFoundError:
            raise HTTPException(status_code=404, detail='Not found') from None
        return StreamingResponse(chunks, media_type=content_type, headers=_attachment(name))

    @app.get('/api/exams/{examination_id}/series/{series_id}/slices/{index}.png', include_in_schema=False)
    def slice_png(request: Request, examination_id: str, series_id: int, index: int, wc: float | None = None, ww: float | None = None,
                  preset: str | None = None) -> Response:
        actor = current_actor(request)
        try:
            data = viewer.render_slice(actor=actor, examination_id=examination_id, series_id=series_id, index=index,
                                       window_center=wc, window_width=ww, preset=preset or None)
        except NotFoundError:
            raise HTTPException(status_code=404, detail='Not found') from None
        except ValidationError as error:
            raise HTTPException(status_code=400, detail=str(error)) from None
        except viewer.PreviewUnavailableError as error:
            raise HTTPException(status_code=422, detail=str(error)) from None
        return Response(data, media_type='image/png', headers={'Cache-Control': 'private, no-store'})
