"""Building the NiceGUI app: migrations, pages, routes, static files and the scheduler."""

from __future__ import annotations

import logging
import os
from pathlib import Path

from nicegui import app

from . import db
from .config import get_settings

logger = logging.getLogger(__name__)

STARTUP_FAILED_EXIT_CODE = 3

ASSETS_DIR = Path(__file__).resolve().parent.parent / 'assets'


def setup() -> None:
    """Register pages, routes and lifecycle hooks; call once before `ui.run`."""
    from .api.auth import register_auth_routes
    from .api.metrics import install_request_metrics, register_metrics_route
    from .api.oidc import register_oidc_routes
    from .api.pwa import register_pwa_routes
    from .api.routes import register_routes
    from .api.security import install_security_middleware
    from .api.sharing import register_sharing_routes
    from .api.socket_guard import install_socket_guard
    from .api.stripe_webhook import register_stripe_webhook
    from .api.uploads import register_upload_routes
    from .pages import register_pages
    from .services import metrics

    from . import log_redaction

    log_redaction.install()
    metrics.reset()
    app.add_static_files('/assets', ASSETS_DIR)
    register_pages()
    register_routes()
    register_metrics_route()
    register_pwa_routes()
    register_sharing_routes()
    register_auth_routes()
    register_oidc_routes()
    register_upload_routes()
    register_stripe_webhook()
    # After register_upload_routes, so that the security wrapper also covers the upload file requests.
    install_security_middleware()
    # After install_security_middleware, so that the responses it sends itself (413, 404) are counted too.
    install_request_metrics()
    install_socket_guard()
    app.on_startup(_startup)
    app.on_shutdown(_shutdown)


def _startup() -> None:
    from .services import bus
    from .services.scheduler import start_scheduler

    settings = get_settings()
    try:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        db.migrate()
        bus.start()
        start_scheduler()
    except Exception:
        # NiceGUI would log the error and serve on, half started: no scheduler, no event channel, and a
        # health check that passes. Exiting lets the platform restart the instance instead.
        logger.exception('SecondOpinion failed to start; exiting')
        if os.environ.get('NICEGUI_USER_SIMULATION'):
            raise
        os._exit(STARTUP_FAILED_EXIT_CODE)
    logger.info('SecondOpinion started (environment %s, data in %s)', settings.environment,
                settings.data_dir.resolve())


def _shutdown() -> None:
    from .services import bus
    from .services.scheduler import stop_scheduler

    stop_scheduler()
    bus.stop()
    db.dispose_engine()
    logger.info('SecondOpinion stopped')
