"""The health check route that load balancers and the container probe call."""

from __future__ import annotations

import os
import shutil

from nicegui.testing import User

from secondopinion import db
from secondopinion.config import get_settings, reset_settings


async def test_healthz_ok(user: User):
    response = await user.http_client.get('/healthz')
    assert response.status_code == 200
    assert response.json() == {'status': 'ok', 'database': 'ok', 'storage': 'ok'}


async def test_healthz_storage_down(user: User, caplog):
    blobs = get_settings().blob_dir
    shutil.rmtree(blobs, ignore_errors=True)
    blobs.write_text('a file where the storage folder should be')
    try:
        response = await user.http_client.get('/healthz')
    finally:
        blobs.unlink()
        caplog.clear()  # the route logs the failure at ERROR level, which the User fixture would report
    assert response.status_code == 503
    assert response.json()['storage'] == 'failed'
    assert response.json()['database'] == 'ok'


async def test_healthz_database_down(user: User, tmp_path, caplog):
    missing_folder = tmp_path / 'no-such-folder' / 'secondopinion.db'
    configured_url = os.environ.get('SECONDOPINION_DATABASE_URL')
    os.environ['SECONDOPINION_DATABASE_URL'] = f'sqlite:///{missing_folder}'
    reset_settings()
    db.dispose_engine()
    response = await user.http_client.get('/healthz')

    # Restore the database before clearing the log: the notification job logs errors while it is gone.
    if configured_url is None:
        del os.environ['SECONDOPINION_DATABASE_URL']
    else:
        os.environ['SECONDOPINION_DATABASE_URL'] = configured_url
    reset_settings()
    db.dispose_engine()
    caplog.clear()
    assert response.status_code == 503
    assert response.json()['database'] == 'failed'
    assert response.json()['storage'] == 'ok'
