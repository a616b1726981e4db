"""Installing the app on a phone's home screen: the web app manifest, the service worker and its offline page.

The service worker (service_worker.js) keeps only the offline page and the logo in the browser's Cache
Storage and sends every other request to the network, so no patient data is stored on the device by it.
"""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path

from nicegui import app
from starlette.responses import HTMLResponse, JSONResponse, Response

from ..app import ASSETS_DIR
from ..config import get_settings

logger = logging.getLogger(__name__)

HERE = Path(__file__).resolve().parent

MANIFEST_PATH = '/manifest.webmanifest'
SERVICE_WORKER_PATH = '/sw.js'
OFFLINE_PATH = '/offline'
LOGO_PATH = '/assets/logo.png'
APPLE_TOUCH_ICON_PATH = '/assets/icons/apple-touch-icon.png'

# The colours of the page frame (pages/layout.py): the header bar and the page background.
THEME_COLOR = '#0f766e'
BACKGROUND_COLOR = '#f5f7f8'

# (path, width and height in pixels, purpose), made by scripts/make_icons.py.
ICONS = [('/assets/icons/icon-192.png', 192, 'any'),
         ('/assets/icons/icon-512.png', 512, 'any'),
         ('/assets/icons/icon-maskable-512.png', 512, 'maskable')]

# Files the service worker stores at install: all that the offline page needs.
SHELL_URLS = [OFFLINE_PATH, LOGO_PATH]
# Navigations the service worker leaves to the browser: file downloads, sign-in and session links, and
# NiceGUI's routes. Other navigations pass through the worker only to show the offline page on failure.
UNTOUCHED_PREFIXES = ['/api/', '/auth/', '/_nicegui/']
CACHE_PREFIX = 'secondopinion-shell-'

# Served with the manifest, the worker and the offline page, so browsers ask for a new version on every
# load instead of using a copy from their HTTP cache.
NO_CACHE = {'Cache-Control': 'no-cache'}

# Linked from the head of every page by pages/layout.py.
HEAD_HTML = f'''<link rel="manifest" href="{MANIFEST_PATH}">
<meta name="theme-color" content="{THEME_COLOR}">
<link rel="apple-touch-icon" href="{APPLE_TOUCH_ICON_PATH}">'''

# Added to the body of every page by pages/layout.py. Registering after "load" keeps the worker's
# install downloads from competing with the page's own.
REGISTRATION_SCRIPT = f'''<script>
if ('serviceWorker' in navigator) {{
  window.addEventListener('load', () => {{
    navigator.serviceWorker.register('{SERVICE_WORKER_PATH}', {{scope: '/'}})
      .catch((error) => console.warn('The service worker was not registered:', error));
  }});
}}
</script>'''


def _fill(template: str, values: dict[str, str]) -> str:
    for name, value in values.items():
        template = template.replace(f'__{name}__', value)
    return template


OFFLINE_HTML = _fill((HERE / 'offline.html').read_text(encoding='utf-8'),
                     {'THEME_COLOR': THEME_COLOR, 'BACKGROUND_COLOR': BACKGROUND_COLOR})


def _cache_name() -> str:
    """Return a cache name that changes whenever the worker, the offline page or the logo changes.

    A changed name changes the bytes of /sw.js, so browsers install the new worker, which stores the new
    files under the new name and deletes the caches of older versions when it activates.
    """
    digest = hashlib.sha256()
    digest.update((HERE / 'service_worker.js').read_bytes())
    digest.update(OFFLINE_HTML.encode('utf-8'))
    digest.update((ASSETS_DIR / 'logo.png').read_bytes())
    return CACHE_PREFIX + digest.hexdigest()[:16]


CACHE_NAME = _cache_name()
SERVICE_WORKER_JS = _fill((HERE / 'service_worker.js').read_text(encoding='utf-8'), {
    'CACHE_PREFIX': CACHE_PREFIX,
    'CACHE_NAME': CACHE_NAME,
    'OFFLINE_URL': OFFLINE_PATH,
    'SHELL_URLS': json.dumps(SHELL_URLS),
    'UNTOUCHED_PREFIXES': json.dumps(UNTOUCHED_PREFIXES),
})


def manifest() -> dict[str, object]:
    """Return the web app manifest: names, start page, full-screen display, colours and icons."""
    return {
        'id': '/',
        'name': get_settings().practice_name,
        'short_name': 'SecondOpinion',
        'description': 'Second opinions on radiology images from qualified radiologists.',
        'lang': 'en',
        'start_url': '/',
        'scope': '/',
        'display': 'standalone',
        'theme_color': THEME_COLOR,
        'background_color': BACKGROUND_COLOR,
        'icons': [{'src': src, 'sizes': f'{size}x{size}', 'type': 'image/png', 'purpose': purpose}
                  for src, size, purpose in ICONS],
    }


def register_pwa_routes() -> None:
    @app.get(MANIFEST_PATH, include_in_schema=False)
    def web_app_manifest() -> JSONResponse:
        return JSONResponse(manifest(), media_type='application/manifest+json', headers=NO_CACHE)

    @app.get(SERVICE_WORKER_PATH, include_in_schema=False)
    def service_worker() -> Response:
        return Response(SERVICE_WORKER_JS, media_type='text/javascript', headers=NO_CACHE)

    @app.get(OFFLINE_PATH, include_in_schema=False)
    def offline_page() -> HTMLResponse:
        return HTMLResponse(OFFLINE_HTML, headers=NO_CACHE)

    logger.debug('PWA routes registered, service worker cache %s', CACHE_NAME)
