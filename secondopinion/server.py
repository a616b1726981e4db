"""Starting the web server with the configured host, port and storage secret."""

from __future__ import annotations

from nicegui import ui

from .app import ASSETS_DIR, setup
from .config import get_settings


def run() -> None:
    from .pages.not_found import unknown_path_page

    settings = get_settings()
    setup()
    # NiceGUI renders the root page for every path that matches no page or route.
    ui.run(unknown_path_page, host=settings.host, port=settings.port, title='SecondOpinion', reload=False,
           show=False, storage_secret=settings.storage_secret.get_secret_value(), favicon=ASSETS_DIR / 'logo.png',
           reconnect_timeout=10,
           # NiceGUI's own cookie holds only the browser id; the sign-in lives in the session cookie.
           session_middleware_kwargs={'same_site': 'lax', 'https_only': settings.cookies_secure},
           # With JSON logs, uvicorn's own records go through the app's handler too, instead of uvicorn's.
           **({'log_config': None} if settings.log_format == 'json' else {}))
