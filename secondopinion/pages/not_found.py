"""The response to a path that matches no page or route: the app's framed "not found" page with status 404."""

from __future__ import annotations

from fastapi import Request
from fastapi.responses import JSONResponse, Response

from .layout import current_actor, not_found_page

# Paths of plain HTTP routes, whose callers read JSON rather than a page.
API_PREFIX = '/api/'


def unknown_path_page(request: Request) -> Response | None:
    """Build the "not found" page for an unknown path, or return the JSON 404 of the API routes under /api/.

    NiceGUI calls this root page of `ui.run` for every GET of a path that matches no route.
    """
    if request.url.path.startswith(API_PREFIX):
        return JSONResponse({'detail': 'Not found'}, status_code=404)
    not_found_page(current_actor())
    return None
