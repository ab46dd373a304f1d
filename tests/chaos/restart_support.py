"""What the restart tests need: a private Redis they may kill (embedded or external), the
web server, a worker and beat on it, each restartable in place, and a minimal websocket
client for the live view served by that web server.

The suite's own Redis (tests/suite_environment.py) serves the whole session, so these tests
never touch it: every process started here gets the private Redis as REDIS_URL.
"""

from __future__ import annotations

from collections.abc import Callable
import contextlib
from pathlib import Path
import re
import signal
import subprocess
import sys
from typing import Any

from django.conf import settings
from django.test import override_settings
import httpx
import orjson
import redis
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from datamate.embedded_redis import EmbeddedRedis, die_with_parent, free_port, start_embedded_redis
from tests.engine import workers
from tests.waiting import wait_until

#: Debian's redis-server, run as an "external" Redis given through REDIS_URL.
SYSTEM_REDIS = Path("/usr/bin/redis-server")


# --- Redis ------------------------------------------------------------------------------


class PrivateRedis:
    """A redis-server on a fixed port that can be killed and started again on that port.

    `embedded`: the server `manage.py up` runs (datamate.embedded_redis): nothing on disk, so
    a restart loses every queued message and counter. `external`: Debian's redis-server with
    a config file, as an operator would run it behind REDIS_URL (append-only file on).
    """

    def __init__(self, directory: Path, kind: str):
        assert kind in ("embedded", "external"), kind
        self.directory, self.kind = Path(directory), kind
        self.directory.mkdir(parents=True, exist_ok=True)
        self.port: int | None = None
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        if self.kind == "embedded":
            server = start_embedded_redis(self.directory, port=self.port)
            self.port, self.process = server.port, server.process
            return
        self.port = self.port or free_port()
        config = self.directory / "redis.conf"
        config.write_text(
            f"bind 127.0.0.1\nport {self.port}\ndir {self.directory}\ndaemonize no\n"
            'save ""\nappendonly yes\nappendfsync everysec\n'
        )
        log = (self.directory / "redis.log").open("ab")
        self.process = subprocess.Popen(
            [str(SYSTEM_REDIS), str(config)],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=die_with_parent,
        )
        log.close()
        client = redis.Redis(port=self.port, socket_connect_timeout=0.5, socket_timeout=0.5)

        def answers() -> bool:
            assert self.process.poll() is None, f"redis-server exited: {(self.directory / 'redis.log').read_text()}"
            with contextlib.suppress(redis.RedisError):
                return client.ping()
            return False

        wait_until(answers, 15, f"redis-server on port {self.port}")
        client.close()

    def kill(self) -> None:
        """SIGKILL: no shutdown save, clients see their connections reset."""
        self.process.kill()
        self.process.wait(10)

    def restart(self, until: Callable[[], Any] | None = None, at_most: float = 10) -> None:
        """Kill, stay down until `until()` holds (at most `at_most` s), start on the same port."""
        self.kill()
        if until is not None:
            with contextlib.suppress(AssertionError):
                wait_until(until, at_most, "the condition to restart Redis")
        self.start()

    def stop(self) -> None:
        if self.process is not None:
            EmbeddedRedis(self.process, self.port).stop()


# --- the application's processes on that Redis -----------------------------------------


class Stack:
    """daphne, one worker and beat, all on the test database and on `redis`."""

    def __init__(self, redis_server: PrivateRedis, log_dir: Path):
        self.redis, self.log_dir = redis_server, Path(log_dir)
        self.web_port = free_port()
        self.web: workers.Process | None = None
        self.worker: workers.Process | None = None
        self.beat: workers.Process | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.web_port}"

    def _spawn(self, start: Callable[[], workers.Process]) -> workers.Process:
        # workers.process_env() hands our processes settings.CELERY_BROKER_URL as REDIS_URL.
        with override_settings(CELERY_BROKER_URL=self.redis.url):
            return start()

    def start_worker(self) -> None:
        self.worker = self._spawn(lambda: workers.start_worker(self.log_dir, name="chaos-worker"))

    def start_beat(self, wait: bool = True) -> None:
        self.beat = self._spawn(lambda: workers.start_beat(self.log_dir))
        if wait:
            self.wait_for_beat()

    def wait_for_beat(self) -> None:
        beat = self.beat
        wait_until(lambda: "beat: Starting..." in beat.output(), 60, "beat to start")

    def start_web(self, wait: bool = True) -> None:
        command = [sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(self.web_port)]
        command.append("datamate.asgi:application")
        self.web = self._spawn(lambda: workers.Process("web", command, self.log_dir))
        if wait:
            self.wait_for_web()

    def wait_for_web(self) -> None:
        web = self.web

        def answers() -> bool:
            assert web.popen.poll() is None, f"daphne exited:\n{web.output()[-3000:]}"
            with contextlib.suppress(httpx.HTTPError):
                return httpx.get(f"{self.base_url}/accounts/login/", timeout=2).status_code == 200
            return False

        wait_until(answers, 60, "daphne to answer", every=0.2)

    def start(self, beat: bool = True) -> None:
        """The web server and beat start while the worker does (the machine may be slow)."""
        self.start_web(wait=False)
        if beat:
            self.start_beat(wait=False)
        self.start_worker()
        if beat:
            self.wait_for_beat()
        self.wait_for_web()

    def kill_all(self) -> None:
        """After the tests: nothing they care about is left running, so no graceful stop."""
        for process in (self.web, self.beat, self.worker):
            if process is not None and not process.log.closed:
                self.kill9(process)

    @staticmethod
    def kill9(process: workers.Process) -> None:
        process.kill(signal.SIGKILL)
        process.popen.wait(10)
        process.log.close()

    def api(self, token: str) -> httpx.Client:
        return httpx.Client(base_url=self.base_url, headers={"Authorization": f"Token {token}"}, timeout=30)


# --- a websocket client -----------------------------------------------------------------


class WebSocket:
    """A real websocket client (the `websockets` library) of the live view, logged in with a
    session cookie; the server sends it JSON messages only."""

    def __init__(self, base_url: str, path: str, cookie: str, timeout: float = 30):
        self.connection = connect(
            "ws" + base_url.removeprefix("http") + path,
            origin=base_url,
            additional_headers={"Cookie": f"{settings.SESSION_COOKIE_NAME}={cookie}"},
            open_timeout=timeout,
        )
        self.close_code: int | None = None

    def receive(self, timeout: float | None = None) -> dict[str, Any] | None:
        """The next JSON message; None once the connection closed. TimeoutError after `timeout`."""
        try:
            return orjson.loads(self.connection.recv(timeout))
        except ConnectionClosed as closed:
            self.close_code = closed.rcvd.code if closed.rcvd else 1006
            return None

    def close(self) -> None:
        self.connection.close()


def snapshot(base_url: str, run_id: int, cookie: str) -> dict[str, Any]:
    """What a client connecting now gets first: the run's snapshot."""
    client = WebSocket(base_url, f"/ws/runs/{run_id}/", cookie)
    try:
        message = client.receive()
    finally:
        client.close()
    assert message is not None and message["type"] == "snapshot", (message, client.close_code)
    return message


# --- reading the worker's log -------------------------------------------------------------

FIRE_LINE = re.compile(r"schedule (\d+) fire of (\S+): (\w+) (.*)")


def fires_logged(*logs: str) -> list[tuple[int, str, str, str]]:
    """(schedule id, fire time, outcome, message) of every fire the workers handled."""
    return [
        (int(m[1]), m[2], m[3], m[4].strip()) for text in logs for m in FIRE_LINE.finditer(text) if m[3] != "ignored"
    ]
