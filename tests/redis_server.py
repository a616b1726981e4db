"""A throwaway Redis server for tests: Debian's redis-server on a free loopback port, keeping nothing on disk."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

STARTUP_TIMEOUT_SECONDS = 15.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


@dataclass
class RedisServer:
    port: int
    folder: Path
    process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f'redis://127.0.0.1:{self.port}/0'

    def start(self) -> None:
        """Start the server on its port (again, after `stop`) and wait until it answers PING."""
        executable = shutil.which('redis-server')
        if executable is None:
            raise RuntimeError('redis-server is missing: install it with `apt-get install redis-server`.')
        log = (self.folder / 'redis.log').open('ab')
        self.process = subprocess.Popen(
            [executable, '--bind', '127.0.0.1', '--port', str(self.port), '--save', '', '--appendonly', 'no',
             '--dir', str(self.folder)], stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
        log.close()
        deadline = time.monotonic() + STARTUP_TIMEOUT_SECONDS
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f'redis-server exited with {self.process.returncode}: '
                                   f'{(self.folder / "redis.log").read_text()[-2000:]}')
            if self.ping():
                return
            time.sleep(0.05)
        raise RuntimeError(f'redis-server did not answer on 127.0.0.1:{self.port} within {STARTUP_TIMEOUT_SECONDS} s')

    def ping(self) -> bool:
        try:
            with socket.create_connection(('127.0.0.1', self.port), timeout=1) as connection:
                connection.sendall(b'PING\r\n')
                return connection.recv(16).startswith(b'+PONG')
        except OSError:
            return False

    def stop(self) -> None:
        process, self.process = self.process, None
        if process is None:
            return
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def start_redis(folder: Path) -> RedisServer:
    folder.mkdir(parents=True, exist_ok=True)
    server = RedisServer(port=free_port(), folder=folder)
    server.start()
    return server
