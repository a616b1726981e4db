"""Background jobs with APScheduler 3: outbox delivery, removal of abandoned uploads, old sign-in counters,
idle sessions, interrupted DICOM transfers."""

from __future__ import annotations

import logging
import threading
from datetime import UTC, datetime

from apscheduler.schedulers.background import BackgroundScheduler

from ..config import get_settings
from . import dicom_send, notifications, sessions, throttle, uploads

logger = logging.getLogger(__name__)

DELIVERY_JOB_ID = 'deliver-notifications'
UPLOAD_SWEEP_JOB_ID = 'sweep-stale-uploads'
UPLOAD_SWEEP_INTERVAL_SECONDS = 10 * 60
SIGN_IN_PURGE_JOB_ID = 'purge-sign-in-counters'
SIGN_IN_PURGE_INTERVAL_SECONDS = 60 * 60
SESSION_EXPIRY_JOB_ID = 'end-idle-sessions'
SESSION_EXPIRY_INTERVAL_SECONDS = 60
INTERRUPTED_TRANSFERS_JOB_ID = 'fail-interrupted-transfers'
INTERRUPTED_TRANSFERS_INTERVAL_SECONDS = 5 * 60
# Seconds a run may start late and still run. Later runs are dropped, which loses nothing because
# the next run delivers every row that is due by then.
MISFIRE_GRACE_SECONDS = 60

_lock = threading.Lock()
_scheduler: BackgroundScheduler | None = None


def start_scheduler() -> None:
    """Start delivering due notifications every `notification_interval_seconds`, and the sweep and purge jobs.

    A second call does nothing.
    """
    global _scheduler
    with _lock:
        if _scheduler is not None:
            return
        interval = get_settings().notification_interval_seconds
        scheduler = BackgroundScheduler(timezone=UTC)
        # One run at a time (max_instances=1). Runs missed while one was busy are coalesced into a
        # single run, because each run delivers everything due, so repeating them would add nothing.
        scheduler.add_job(
            _deliver_job, 'interval', seconds=interval, id=DELIVERY_JOB_ID, max_instances=1, coalesce=True,
            misfire_grace_time=MISFIRE_GRACE_SECONDS, next_run_time=datetime.now(UTC),
        )
        # The first sweep runs at start, which removes uploads a previous process left behind.
        scheduler.add_job(
            _sweep_uploads_job, 'interval', seconds=UPLOAD_SWEEP_INTERVAL_SECONDS, id=UPLOAD_SWEEP_JOB_ID,
            max_instances=1, coalesce=True, misfire_grace_time=MISFIRE_GRACE_SECONDS, next_run_time=datetime.now(UTC),
        )
        scheduler.add_job(
            _purge_sign_in_counters_job, 'interval', seconds=SIGN_IN_PURGE_INTERVAL_SECONDS, id=SIGN_IN_PURGE_JOB_ID,
            max_instances=1, coalesce=True, misfire_grace_time=MISFIRE_GRACE_SECONDS,
        )
        scheduler.add_job(
            _end_idle_sessions_job, 'interval', seconds=SESSION_EXPIRY_INTERVAL_SECONDS, id=SESSION_EXPIRY_JOB_ID,
            max_instances=1, coalesce=True, misfire_grace_time=MISFIRE_GRACE_SECONDS,
        )
        # The first run is at start, for transfers that a stopped server left running.
        scheduler.add_job(
            _fail_interrupted_transfers_job, 'interval', seconds=INTERRUPTED_TRANSFERS_INTERVAL_SECONDS,
            id=INTERRUPTED_TRANSFERS_JOB_ID, max_instances=1, coalesce=True, misfire_grace_time=MISFIRE_GRACE_SECONDS,
            next_run_time=datetime.now(UTC),
        )
        scheduler.start()
        _scheduler = scheduler
    logger.info('scheduler started: notification delivery every %s s', interval)


def stop_scheduler() -> None:
    """Stop the scheduler and wait for a running delivery to finish. Does nothing when it is not running.

    Waiting keeps a message from being left in `sending`, where it would be sent again only after
    the stale-claim timeout.
    """
    global _scheduler
    with _lock:
        scheduler, _scheduler = _scheduler, None
    if scheduler is None:
        return
    logger.info('scheduler stopping: waiting for running jobs to finish')
    scheduler.shutdown(wait=True)
    logger.info('scheduler stopped')


def _deliver_job() -> None:
    """Run one delivery. Every exception is logged here, so a failing run never stops the scheduler."""
    try:
        sent = notifications.deliver_due()
    except Exception:
        logger.exception('notification delivery run failed')
        return
    if sent:
        logger.info('notification delivery run sent %s message(s)', sent)


def _sweep_uploads_job() -> None:
    try:
        removed = uploads.sweep_stale_uploads()
    except Exception:
        logger.exception('sweep of stale uploads failed')
        return
    if removed:
        logger.info('sweep removed %s stale upload(s)', removed)


def _purge_sign_in_counters_job() -> None:
    try:
        removed = throttle.purge_stale()
    except Exception:
        logger.exception('purge of old sign-in counters failed')
        return
    if removed:
        logger.info('purge removed %s old sign-in counter(s)', removed)


def _end_idle_sessions_job() -> None:
    try:
        ended = sessions.end_idle()
    except Exception:
        logger.exception('ending idle sessions failed')
        return
    if ended:
        logger.info('ended %s idle or expired session(s)', ended)


def _fail_interrupted_transfers_job() -> None:
    try:
        failed = dicom_send.fail_interrupted_transfers()
    except Exception:
        logger.exception('check for interrupted DICOM transfers failed')
        return
    if failed:
        logger.info('%s interrupted DICOM transfer(s) marked failed', failed)
