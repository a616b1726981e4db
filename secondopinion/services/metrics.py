"""Prometheus metrics of the app: HTTP requests, image upload bytes, outbox depth and open doctor boards.

Counters live in a registry of this module, not in prometheus-client's global default one, so that
`reset()` can give every freshly built app (each page test builds one) its own zeroed set. The
outbox depth and the board count are read when Prometheus scrapes, not tracked as events happen.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

from prometheus_client import CollectorRegistry, Counter, Histogram, PlatformCollector, ProcessCollector
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.registry import Collector
from sqlalchemy import func, select
from sqlalchemy.exc import SQLAlchemyError

from ..db import session_scope
from ..models import Notification, NotificationStatus
from . import events
from .notifications import EMAIL_CHANNEL
from .sms import SMS_CHANNEL

logger = logging.getLogger(__name__)

CONTENT_TYPE = CONTENT_TYPE_LATEST
# The route label of a request that matched no route, so that scanners probing random paths add one
# series, not one per path.
UNMATCHED_ROUTE = 'unmatched'
# Uploads of a large file take minutes, hence the buckets beyond prometheus-client's default top of 10 s.
DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0)
# Statuses of outbox rows that were not sent. Failed rows wait for an admin to retry them.
UNSENT_STATUSES = (NotificationStatus.QUEUED, NotificationStatus.SENDING, NotificationStatus.FAILED)
CHANNELS = (EMAIL_CHANNEL, SMS_CHANNEL)


class _ScrapeTimeCollector(Collector):
    """Collector of the values that are read when Prometheus scrapes: outbox depth and open boards."""

    def collect(self) -> Iterator[Metric]:
        try:
            unsent = count_unsent_notifications()
        except SQLAlchemyError as error:
            # The other metrics are still worth a scrape, and the missing series shows that this one failed.
            logger.error('outbox depth not reported, because the database query failed: %s', error)
        else:
            outbox = GaugeMetricFamily('secondopinion_outbox_messages',
                                       'Notifications in the outbox that are not sent yet, by status and channel',
                                       labels=['status', 'channel'])
            for (status, channel), count in unsent.items():
                outbox.add_metric([status, channel], count)
            yield outbox
        yield GaugeMetricFamily('secondopinion_board_clients', 'Doctor board pages open in a browser',
                                value=events.subscriber_count())


class AppMetrics:
    """The registry of one app and the metrics in it."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter('secondopinion_http_requests', 'HTTP requests by method, route template and status',
                                ['method', 'route', 'status'], registry=self.registry)
        self.request_duration = Histogram('secondopinion_http_request_duration_seconds',
                                          'Time from the start of an HTTP request to the end of its response',
                                          ['method', 'route'], buckets=DURATION_BUCKETS, registry=self.registry)
        self.upload_bytes = Counter('secondopinion_upload_bytes', 'Bytes of image files received and stored whole',
                                    registry=self.registry)
        ProcessCollector(registry=self.registry)
        PlatformCollector(registry=self.registry)
        self.registry.register(_ScrapeTimeCollector())


_current = AppMetrics()


def reset() -> None:
    """Start a new registry with every counter at zero. `app.setup` calls this for each app it builds."""
    global _current
    _current = AppMetrics()


def record_request(*, method: str, route: str, status: str, seconds: float) -> None:
    _current.requests.labels(method, route, status).inc()
    _current.request_duration.labels(method, route).observe(seconds)


def add_upload_bytes(count: int) -> None:
    _current.upload_bytes.inc(count)


def count_unsent_notifications() -> dict[tuple[str, str], int]:
    """Count outbox rows by (status, channel) in one query, with a zero for each combination that has none."""
    counts = {(str(status), channel): 0 for status in UNSENT_STATUSES for channel in CHANNELS}
    query = (select(Notification.status, Notification.channel, func.count())
             .where(Notification.status.in_([str(status) for status in UNSENT_STATUSES]))
             .group_by(Notification.status, Notification.channel))
    with session_scope() as session:
        for status, channel, count in session.execute(query):
            counts[(status, channel)] = count
    return counts


def render() -> bytes:
    """Return every metric in the Prometheus text format. Runs a database query, so call it off the event loop."""
    return generate_latest(_current.registry)
