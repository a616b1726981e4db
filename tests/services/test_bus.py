"""The event channel between app instances, over PostgreSQL LISTEN/NOTIFY and over Redis pub/sub.

The other instance is played by a second connection of the same transport: what it publishes carries
another instance id, and it receives what this process forwards.
"""

from __future__ import annotations

import json
import logging
import os
import queue
import threading
import time
from collections.abc import Iterator

import pytest

from secondopinion.config import reset_settings
from secondopinion.services import bus, events, sessions
from tests.redis_server import RedisServer, start_redis

WAIT_SECONDS = 10.0
PEER = 'peer-instance'


class Peer:
    """Another instance's end of the channel: publishes as PEER and collects what arrives."""

    def __init__(self, transport) -> None:  # noqa: ANN001
        self.transport = transport
        transport.connect()  # returns once the server has confirmed LISTEN or SUBSCRIBE

    def send(self, topic: str, data: dict) -> None:
        self.transport.publish(json.dumps({'origin': PEER, 'topic': topic, 'data': data}))

    def receive(self, count: int = 1) -> list[dict]:
        messages: list[dict] = []
        deadline = time.monotonic() + WAIT_SECONDS
        while len(messages) < count and time.monotonic() < deadline:
            messages += [json.loads(payload) for payload in self.transport.receive(0.2)]
        assert len(messages) >= count, f'{count} message(s) expected, {len(messages)} arrived: {messages}'
        return messages

    def close(self) -> None:
        self.transport.close()


@pytest.fixture(params=['postgres', 'redis'])
def channel(request, tmp_path, monkeypatch) -> Iterator[tuple[str, Peer, RedisServer | None]]:
    """Start this process's event channel on the parameter's transport, and a peer connection to it."""
    redis_server = None
    if request.param == 'postgres':
        url = os.environ.get('SECONDOPINION_TEST_DATABASE_URL')
        if not url:
            pytest.skip('LISTEN/NOTIFY needs PostgreSQL: the suite uses it when SECONDOPINION_TEST_DATABASE_URL is set')
        peer = Peer(bus._PostgresTransport(url))
    else:
        redis_server = start_redis(tmp_path / 'redis')
        monkeypatch.setenv('SECONDOPINION_REDIS_URL', redis_server.url)
        reset_settings()
        peer = Peer(bus._RedisTransport(redis_server.url, 'secondopinion'))
    name = bus.start()
    assert name is not None
    try:
        yield request.param, peer, redis_server
    finally:
        bus.stop()
        peer.close()
        if redis_server is not None:
            redis_server.stop()


@pytest.fixture
def received() -> Iterator[queue.Queue]:
    """Examination events delivered to this process's subscribers."""
    inbox: queue.Queue = queue.Queue()
    unsubscribe = events.subscribe(inbox.put)
    yield inbox
    unsubscribe()


def test_published_change_reaches_other_instance_once(channel, received):
    _, peer, _ = channel
    events.publish(events.ExamChanged(examination_id='exam-1', status='pending', doctor_id=None))

    [message] = peer.receive()
    assert message['origin'] == bus.INSTANCE_ID
    assert message['topic'] == events.BUS_TOPIC
    assert message['data'] == {'examination_id': 'exam-1', 'status': 'pending', 'doctor_id': None}
    # This process's subscribers got it directly, and the copy that came back over the channel was skipped.
    assert received.get(timeout=WAIT_SECONDS).examination_id == 'exam-1'
    time.sleep(1.0)
    assert received.empty()


def test_change_from_other_instance_reaches_subscribers(channel, received):
    _, peer, _ = channel
    peer.send(events.BUS_TOPIC, {'examination_id': 'exam-2', 'status': 'under_review', 'doctor_id': 7})

    event = received.get(timeout=WAIT_SECONDS)
    assert event == events.ExamChanged(examination_id='exam-2', status='under_review', doctor_id=7)


def test_ended_sessions_from_other_instance_reach_listeners(channel):
    _, peer, _ = channel
    inbox: queue.Queue = queue.Queue()
    remove = sessions.add_revocation_listener(inbox.put)
    try:
        peer.send(sessions.BUS_TOPIC, {'session_ids': [11, 12]})
        assert inbox.get(timeout=WAIT_SECONDS) == frozenset({11, 12})
    finally:
        remove()


def test_many_ended_sessions_are_split_into_small_messages(channel):
    _, peer, _ = channel
    ids = list(range(1, 1201))
    sessions.announce_ended(ids)

    messages = peer.receive(3)
    assert len(messages) == 3
    assert sorted(i for message in messages for i in message['data']['session_ids']) == ids
    assert all(len(json.dumps(message)) < bus.MAX_PAYLOAD_BYTES for message in messages)


def test_malformed_and_unknown_messages_are_skipped(channel, received, caplog):
    _, peer, _ = channel
    peer.transport.publish('not json at all')
    peer.send('no-such-topic', {'x': 1})
    peer.send(events.BUS_TOPIC, {'examination_id': 'exam-3', 'status': 'pending', 'doctor_id': None})

    # The good message behind the two bad ones still arrives, and the listener logged the malformed one.
    assert received.get(timeout=WAIT_SECONDS).examination_id == 'exam-3'
    assert 'skipped a malformed message' in caplog.text


def test_too_large_message_is_refused():
    with pytest.raises(bus.MessageTooLarge):
        bus.encode('topic', {'text': 'x' * bus.MAX_PAYLOAD_BYTES})


def test_redis_restart_reconnects_and_tells_pages_to_reload(channel, received, caplog):
    name, peer, redis_server = channel
    if redis_server is None:
        pytest.skip('this test restarts the Redis server')
    caplog.set_level(logging.INFO, logger='secondopinion.services.bus')
    peer.close()
    redis_server.stop()
    # Sending while Redis is down loses the message for the others, but never fails the caller.
    events.publish(events.ExamChanged(examination_id='exam-4', status='pending', doctor_id=None))
    assert received.get(timeout=WAIT_SECONDS).examination_id == 'exam-4'
    redis_server.start()

    # After reconnecting, subscribers get the "changes may have been missed" event and reload.
    assert received.get(timeout=WAIT_SECONDS + bus.RECONNECT_MAX_DELAY_SECONDS) == events.MISSED
    assert 'could not send a examination-changed message' in caplog.text
    assert 'connected again' in caplog.text
    peer = Peer(bus._RedisTransport(redis_server.url, 'secondopinion'))
    try:
        peer.send(events.BUS_TOPIC, {'examination_id': 'exam-5', 'status': 'pending', 'doctor_id': None})
        assert received.get(timeout=WAIT_SECONDS).examination_id == 'exam-5'
    finally:
        peer.close()


def test_unreachable_redis_does_not_fail_publishers(tmp_path, monkeypatch, received, caplog):
    server = start_redis(tmp_path / 'redis')
    server.stop()  # a port where nothing listens any more
    monkeypatch.setenv('SECONDOPINION_REDIS_URL', server.url)
    reset_settings()
    bus.start(wait_seconds=0.5)
    try:
        assert not bus.is_connected()
        events.publish(events.ExamChanged(examination_id='exam-6', status='pending', doctor_id=None))
        assert received.get(timeout=WAIT_SECONDS).examination_id == 'exam-6'
        assert 'event channel (Redis pub/sub) unreachable' in caplog.text
    finally:
        bus.stop()


def test_sqlite_means_one_instance_and_no_channel():
    if os.environ.get('SECONDOPINION_TEST_DATABASE_URL'):
        pytest.skip('the suite runs on PostgreSQL')
    assert bus.start() is None
    assert not bus.is_connected()
    bus.forward('topic', {'a': 1})  # nothing to send to, and no error


def test_listener_thread_ends_on_stop(channel):
    bus.stop()
    assert not any(thread.name == 'event-bus-listener' for thread in threading.enumerate())
