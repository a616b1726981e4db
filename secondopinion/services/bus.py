"""Messages between app instances: what one instance publishes reaches the others' open pages.

Each instance delivers its own events to its own pages directly (services/events.py, services/sessions.py).
It also hands them to `forward`, which sends them to the other instances. The transport is Redis pub/sub
when `redis_url` is set, else PostgreSQL NOTIFY when the database is PostgreSQL. With SQLite there is only
one instance, so `forward` does nothing. A thread per instance listens, skips its own messages and
hands the others' to the handlers registered with `on_message`.

Delivery is at most once: a message published while an instance is disconnected is lost to it. After
the listener reconnects, every topic's gap handler runs, so pages reload what they show.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from sqlalchemy import text
from sqlalchemy.engine import make_url

from .. import db
from ..config import get_settings

logger = logging.getLogger(__name__)

# The NOTIFY channel in the app's PostgreSQL database; each database is one deployment.
POSTGRES_CHANNEL = 'secondopinion_events'
# PostgreSQL refuses NOTIFY payloads of 8000 bytes or more; publishers keep well below.
MAX_PAYLOAD_BYTES = 7000
# How long the listener waits for a message before it checks whether it should stop.
POLL_SECONDS = 0.5
RECONNECT_FIRST_DELAY_SECONDS = 0.5
RECONNECT_MAX_DELAY_SECONDS = 30.0

MessageHandler = Callable[[dict[str, Any]], None]
GapHandler = Callable[[], None]


@dataclass
class _Topic:
    handlers: list[MessageHandler] = field(default_factory=list)
    gap_handlers: list[GapHandler] = field(default_factory=list)


_topics: dict[str, _Topic] = {}
_topics_lock = threading.Lock()
# Identifies this process's messages, so that the listener skips them.
INSTANCE_ID = uuid.uuid4().hex


class MessageTooLarge(ValueError):
    pass


class _Transport(Protocol):
    name: str

    def publish(self, payload: str) -> None: ...

    def connect(self) -> None: ...

    def receive(self, timeout: float) -> list[str]: ...

    def close(self) -> None: ...


def on_message(topic: str, handler: MessageHandler, on_gap: GapHandler | None = None) -> None:
    """Call `handler` with the data of each message another instance publishes on `topic`.

    `on_gap` runs after the listener lost its connection and got it back, because messages sent in
    between never arrive. Handlers run in the listener thread, so they must return quickly.
    """
    with _topics_lock:
        entry = _topics.setdefault(topic, _Topic())
        if handler not in entry.handlers:
            entry.handlers.append(handler)
        if on_gap is not None and on_gap not in entry.gap_handlers:
            entry.gap_handlers.append(on_gap)


def encode(topic: str, data: dict[str, Any]) -> str:
    payload = json.dumps({'origin': INSTANCE_ID, 'topic': topic, 'data': data}, separators=(',', ':'))
    if len(payload.encode()) > MAX_PAYLOAD_BYTES:
        raise MessageTooLarge(f'a {topic} message of {len(payload)} bytes is over the {MAX_PAYLOAD_BYTES}-byte limit')
    return payload


def dispatch(payload: str) -> bool:
    """Hand one received message to its topic's handlers; return False when it was skipped.

    Skipped are messages of this instance, malformed ones and those of topics without a handler.
    """
    try:
        message = json.loads(payload)
        origin, topic, data = message['origin'], message['topic'], message['data']
    except (ValueError, KeyError, TypeError):
        logger.warning('skipped a malformed message of %s bytes from the event channel', len(payload))
        return False
    if origin == INSTANCE_ID or not isinstance(data, dict):
        return False
    with _topics_lock:
        handlers = list(_topics[topic].handlers) if topic in _topics else []
    for handler in handlers:
        try:
            handler(data)
        except Exception:
            logger.exception('handler of a %s message from instance %s failed', topic, origin)
    return bool(handlers)


def _announce_gap() -> None:
    with _topics_lock:
        handlers = [handler for entry in _topics.values() for handler in entry.gap_handlers]
    for handler in handlers:
        try:
            handler()
        except Exception:
            logger.exception('gap handler of the event channel failed')


class _PostgresTransport:
    """NOTIFY through the app's engine; LISTEN on a connection of its own, in autocommit mode."""

    name = 'PostgreSQL LISTEN/NOTIFY'

    def __init__(self, database_url: str) -> None:
        # psycopg takes the URL without SQLAlchemy's "+psycopg" driver suffix.
        self._conninfo = make_url(database_url).set(drivername='postgresql').render_as_string(hide_password=False)
        self._connection: Any = None

    def publish(self, payload: str) -> None:
        with db.get_engine().connect() as connection:
            connection.execute(text('SELECT pg_notify(:channel, :payload)'),
                               {'channel': POSTGRES_CHANNEL, 'payload': payload})
            connection.commit()

    def connect(self) -> None:
        import psycopg

        connection = psycopg.connect(self._conninfo, autocommit=True, connect_timeout=5)
        connection.execute(f'LISTEN {POSTGRES_CHANNEL}')
        self._connection = connection

    def receive(self, timeout: float) -> list[str]:
        return [notify.payload for notify in self._connection.notifies(timeout=timeout)]

    def close(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            try:
                connection.close()
            except Exception:
                logger.debug('closing the LISTEN connection failed', exc_info=True)


class _RedisTransport:
    """PUBLISH and SUBSCRIBE on one Redis channel named after the key prefix."""

    name = 'Redis pub/sub'

    def __init__(self, redis_url: str, prefix: str) -> None:
        import redis

        self._channel = f'{prefix}:events'
        self._publisher = redis.Redis.from_url(redis_url, socket_connect_timeout=5, socket_timeout=5)
        self._redis_url = redis_url
        self._subscriber: Any = None
        self._pubsub: Any = None

    def publish(self, payload: str) -> None:
        self._publisher.publish(self._channel, payload)

    def connect(self) -> None:
        import redis

        # The client must outlive the subscription: a collected client closes its connections.
        client = redis.Redis.from_url(self._redis_url, socket_connect_timeout=5)
        pubsub = client.pubsub()
        pubsub.subscribe(self._channel)
        self._subscriber, self._pubsub = client, pubsub
        # Wait for Redis to confirm, so that the channel counts as connected only once messages arrive.
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            reply = pubsub.get_message(timeout=0.5)
            if reply is not None and reply.get('type') == 'subscribe':
                return
        raise TimeoutError(f'Redis did not confirm the subscription to {self._channel}')

    def receive(self, timeout: float) -> list[str]:
        message = self._pubsub.get_message(timeout=timeout)
        if message is None or message.get('type') != 'message':
            return []
        value = message['data']
        return [value.decode() if isinstance(value, bytes) else str(value)]

    def close(self) -> None:
        pubsub, client = self._pubsub, self._subscriber
        self._pubsub = self._subscriber = None
        for resource in (pubsub, client):
            if resource is not None:
                try:
                    resource.close()
                except Exception:
                    logger.debug('closing the Redis subscription failed', exc_info=True)


class _Listener:
    def __init__(self, transport: _Transport) -> None:
        self.transport = transport
        self.stopping = threading.Event()
        self.connected = threading.Event()
        self.thread = threading.Thread(target=self._run, name='event-bus-listener', daemon=True)

    def _run(self) -> None:
        delay = RECONNECT_FIRST_DELAY_SECONDS
        had_connection = False
        while not self.stopping.is_set():
            try:
                self.transport.connect()
            except Exception as error:
                logger.warning('event channel (%s) unreachable: %s; retrying in %.1f s',
                               self.transport.name, type(error).__name__, delay)
                self.stopping.wait(delay)
                delay = min(delay * 2, RECONNECT_MAX_DELAY_SECONDS)
                continue
            if had_connection:
                logger.info('event channel (%s) connected again; pages reload what they show', self.transport.name)
                _announce_gap()
            had_connection = True
            delay = RECONNECT_FIRST_DELAY_SECONDS
            self.connected.set()
            try:
                while not self.stopping.is_set():
                    for payload in self.transport.receive(POLL_SECONDS):
                        dispatch(payload)
            except Exception as error:
                if not self.stopping.is_set():
                    logger.warning('event channel (%s) lost: %s; reconnecting', self.transport.name,
                                   type(error).__name__)
            finally:
                self.connected.clear()
                self.transport.close()


_state_lock = threading.Lock()
_transport: _Transport | None = None
_listener: _Listener | None = None


def _choose_transport() -> _Transport | None:
    settings = get_settings()
    if settings.redis_url:
        return _RedisTransport(settings.redis_url, settings.redis_key_prefix)
    url = settings.resolved_database_url
    if make_url(url).get_backend_name() == 'postgresql':
        return _PostgresTransport(url)
    return None


def start(wait_seconds: float = 10.0) -> str | None:
    """Start sending and listening; return the transport's name, or None with SQLite (one instance).

    Waits up to `wait_seconds` for the first connection, so that a page served right after start
    already gets the others' events. Without a connection by then, the listener keeps trying.
    """
    global _transport, _listener
    with _state_lock:
        if _listener is not None:
            return _listener.transport.name
        transport = _choose_transport()
        if transport is None:
            logger.info('event channel off: the database is not PostgreSQL and no Redis URL is set, '
                        'so this is the only instance')
            return None
        listener = _Listener(transport)
        _transport, _listener = transport, listener
    listener.thread.start()
    if not listener.connected.wait(wait_seconds):
        logger.warning('event channel (%s) not connected after %.0f s; still trying', transport.name, wait_seconds)
    logger.info('event channel started: %s, instance %s', transport.name, INSTANCE_ID[:8])
    return transport.name


def stop() -> None:
    """Stop listening and wait for the listener thread. Does nothing when the channel is off."""
    global _transport, _listener
    with _state_lock:
        listener, _listener, _transport = _listener, None, None
    if listener is None:
        return
    listener.stopping.set()
    listener.thread.join(timeout=POLL_SECONDS * 4 + 5)
    logger.info('event channel stopped')


def is_connected() -> bool:
    listener = _listener
    return listener is not None and listener.connected.is_set()


def forward(topic: str, data: dict[str, Any]) -> None:
    """Send a message to the other instances; errors are logged, never raised.

    The caller has already delivered the event in this process and committed its change, so a lost
    message costs other instances only the immediate update: their boards reload every 30 s anyway,
    and their pages recheck the session every 30 s.
    """
    transport = _transport
    if transport is None:
        return
    try:
        transport.publish(encode(topic, data))
    except Exception:
        logger.exception('could not send a %s message to the other instances through %s', topic, transport.name)
