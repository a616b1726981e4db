"""Starting the web server with the configured host, port and storage secret, and stopping it on SIGTERM.

On SIGTERM (or Ctrl+C), uvicorn stops accepting connections, closes idle ones and waits up to
`shutdown_grace_seconds` for the requests in flight, such as an image file half-way through its
upload. Only then does it run the app's shutdown hooks, where the scheduler waits for a running
delivery job (`app._shutdown`). Requests still running after the grace period are cancelled.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
from types import FrameType

from nicegui import app, ui
from nicegui.server import Server

from .app import ASSETS_DIR, setup
from .config import get_settings

logger = logging.getLogger(__name__)

# How often the stop watcher checks whether uvicorn received a stop signal.
STOP_POLL_SECONDS = 0.1


def run() -> None:
    from .pages.not_found import unknown_path_page

    settings = get_settings()
    setup()
    # NiceGUI's User fixture runs this inside pytest, where ui.run returns without serving.
    if not os.environ.get('NICEGUI_USER_SIMULATION'):
        signal.signal(signal.SIGTERM, _exit_after_graceful_stop)
        app.on_startup(_log_when_stopping)
    # NiceGUI renders the root page for every path that matches no page or route.
    ui.run(unknown_path_page, host=settings.host, port=settings.port, title='SecondOpinion', reload=False,
           show=False, storage_secret=settings.storage_secret.get_secret_value(), favicon=ASSETS_DIR / 'logo.png',
           reconnect_timeout=10,
           # NiceGUI's own cookie holds only the browser id; the sign-in lives in the session cookie.
           session_middleware_kwargs={'same_site': 'lax', 'https_only': settings.cookies_secure},
           # ui.run passes this on to uvicorn.Config.
           timeout_graceful_shutdown=settings.shutdown_grace_seconds,
           # With JSON logs, uvicorn's own records go through the app's handler too, instead of uvicorn's.
           **({'log_config': None} if settings.log_format == 'json' else {}))


def _exit_after_graceful_stop(signum: int, frame: FrameType | None) -> None:
    """Exit with status 0 on a SIGTERM that uvicorn passes on after its graceful stop.

    uvicorn (0.29 and later) handles SIGTERM itself while it serves, and after the stop raises the
    signal again for the handler that was there before. With Python's default handler, the process
    would then die by the signal (status 143 in a shell) although everything stopped cleanly.
    A SIGTERM before uvicorn serves also lands here and ends the process at once.
    """
    raise SystemExit(0)


async def _log_when_stopping() -> None:
    """Start a task that logs the stop as soon as uvicorn receives SIGTERM or SIGINT."""
    server = getattr(Server, 'instance', None)
    if server is None:
        return

    async def watch() -> None:
        while not server.should_exit:
            await asyncio.sleep(STOP_POLL_SECONDS)
        logger.info('SecondOpinion stopping: accepting no new connections, waiting up to %s s for %d open '
                    'connection(s), then stopping the scheduler', get_settings().shutdown_grace_seconds,
                    len(server.server_state.connections))

    # Keep a reference, because the event loop holds only a weak one to its tasks.
    app.state.stop_watcher = asyncio.create_task(watch())
