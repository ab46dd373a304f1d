"""`manage.py up` as a user runs it: real redis-server, daphne, Celery worker and beat."""

import json
import os
from pathlib import Path
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request

import psutil
import pytest

from datamate.embedded_redis import free_port
from tests.waiting import wait_until

REPO = Path(__file__).resolve().parent.parent

pytestmark = [pytest.mark.slow, pytest.mark.timeout(180)]


class Up:
    """A `manage.py up` subprocess with its own var dir, SQLite database and port."""

    def __init__(self, tmp_path: Path):
        self.var_dir = tmp_path / "var"
        self.port = free_port()
        self.log_path = tmp_path / "up.log"
        env = {name: value for name, value in os.environ.items() if name != "REDIS_URL"}
        env.update(
            DATAMATE_VAR_DIR=str(self.var_dir),
            DATABASE_URL=f"sqlite:///{tmp_path / 'db.sqlite3'}",
            HOST="127.0.0.1",
            PORT=str(self.port),
            CELERY_CONCURRENCY="1",
        )
        subprocess.run(
            [sys.executable, "manage.py", "migrate", "--noinput"], cwd=REPO, env=env, check=True, capture_output=True
        )
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen(
                [sys.executable, "manage.py", "up"], cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT
            )

    @property
    def output(self) -> str:
        return self.log_path.read_text(errors="replace")

    @property
    def redis_url_file(self) -> Path:
        return self.var_dir / "redis.url"

    def health(self) -> tuple[int, dict]:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/healthz", timeout=5) as response:
                return response.status, json.load(response)
        except urllib.error.HTTPError as error:
            return error.code, json.load(error)

    def wait_healthy(self, timeout: float = 60) -> dict:
        deadline = time.monotonic() + timeout
        last = "no answer yet"
        while time.monotonic() < deadline:
            assert self.process.poll() is None, f"manage.py up exited with {self.process.returncode}:\n{self.output}"
            try:
                status, body = self.health()
                last = f"{status} {body}"
                if status == 200 and body["workers"]["count"] >= 1:
                    return body
            except (OSError, ValueError) as exc:  # not listening yet, or a half-started server
                last = repr(exc)
            time.sleep(0.5)
        pytest.fail(f"/healthz not healthy within {timeout}s (last: {last}):\n{self.output}")

    def descendants(self) -> list[psutil.Process]:
        return psutil.Process(self.process.pid).children(recursive=True)

    def child_running(self, *words: str) -> psutil.Process:
        """The direct child whose command line contains every one of `words` as an argument."""
        for child in psutil.Process(self.process.pid).children():
            if all(word in child.cmdline() for word in words):
                return child
        pytest.fail(f"no child process with {words} in its command line")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()  # its children die with it (PR_SET_PDEATHSIG)
            self.process.wait()


def alive(processes: list[psutil.Process], grace: float = 5.0) -> list[psutil.Process]:
    """Those still running after `grace` seconds. Zombies count as gone: they run nothing."""
    deadline = time.monotonic() + grace
    while True:
        running = []
        for process in processes:
            try:
                if process.is_running() and process.status() != psutil.STATUS_ZOMBIE:
                    running.append(process)
            except psutil.NoSuchProcess:
                pass
        if not running or time.monotonic() >= deadline:
            return running
        time.sleep(0.1)


@pytest.fixture
def start_up(tmp_path):
    started = []

    def start() -> Up:
        up = Up(tmp_path)
        started.append(up)
        return up

    yield start
    for up in started:
        up.stop()
        print(f"--- manage.py up output ---\n{up.output}")  # shown by pytest when the test failed


def test_up_runs_everything_and_stops_cleanly_on_sigterm(start_up):
    up = start_up()
    health = up.wait_healthy()

    assert health["status"] == "ok"
    assert health["database"] == {"ok": True}
    assert health["redis"] == {"ok": True}
    assert health["workers"]["ok"] is True
    assert all(name.startswith("worker@") for name in health["workers"]["names"])
    assert up.redis_url_file.read_text().startswith("redis://127.0.0.1:")
    assert f"http://127.0.0.1:{up.port}/" in up.output
    for prefix in ("web    | ", "worker | ", "beat   | ", "redis  | "):
        assert prefix in up.output

    processes = up.descendants()
    up.process.send_signal(signal.SIGTERM)
    assert up.process.wait(timeout=20) == 0, up.output
    assert alive(processes) == []
    assert not up.redis_url_file.exists()


def test_up_stops_everything_when_a_child_dies(start_up):
    up = start_up()
    up.wait_healthy()
    processes = up.descendants()

    up.child_running("celery", "worker").send_signal(signal.SIGKILL)

    assert up.process.wait(timeout=30) != 0, up.output
    assert "worker exited on signal SIGKILL" in up.output
    assert "last " in up.output and " lines of worker:" in up.output
    assert alive(processes) == []
    assert not up.redis_url_file.exists()


def test_up_starts_its_redis_again_when_it_dies(start_up):
    """The private redis-server keeps nothing that cannot be rebuilt: it is started again on
    the same port, and the rest carries on (the worker answers /healthz through it again)."""
    up = start_up()
    up.wait_healthy()
    url = up.redis_url_file.read_text()
    others = [up.child_running("celery", "worker"), up.child_running("celery", "beat")]

    (redis,) = [child for child in psutil.Process(up.process.pid).children() if child.name() == "redis-server"]
    redis.send_signal(signal.SIGKILL)

    wait_until(lambda: "redis exited on signal SIGKILL; starting it again" in up.output, timeout=30, what="a restart")
    health = up.wait_healthy()
    assert health["redis"] == {"ok": True}
    assert up.process.poll() is None and up.redis_url_file.read_text() == url
    assert alive(others, grace=0) == others  # nothing else was restarted

    up.process.send_signal(signal.SIGTERM)
    assert up.process.wait(timeout=20) == 0, up.output


def test_nothing_outlives_a_killed_supervisor(start_up):
    up = start_up()
    up.wait_healthy()
    processes = up.descendants()

    up.process.kill()
    up.process.wait()

    # Each child learns of it through PR_SET_PDEATHSIG and shuts down its own group.
    assert alive(processes, grace=15) == []
