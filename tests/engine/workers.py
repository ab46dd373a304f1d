"""Real Celery worker (and beat) processes for the engine tests, on the test database."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
import signal
import subprocess
import sys
import time

from django.conf import settings
from django.db import connection
import psutil

from datamate.celery import app

ROOT = Path(__file__).resolve().parents[2]


def test_database_url() -> str:
    """The URL of the database pytest-django created, for processes we start."""
    db = connection.settings_dict
    if db["ENGINE"] == "django.db.backends.sqlite3":
        return f"sqlite:///{db['NAME']}"
    user = db.get("USER") or ""
    password = f":{db['PASSWORD']}" if db.get("PASSWORD") else ""
    auth = f"{user}{password}@" if user else ""
    return f"postgres://{auth}{db.get('HOST') or '127.0.0.1'}:{db.get('PORT') or 5432}/{db['NAME']}"


def process_env() -> dict[str, str]:
    env = dict(os.environ)
    env["DATABASE_URL"] = test_database_url()
    env["REDIS_URL"] = settings.CELERY_BROKER_URL
    env["PYTHONUNBUFFERED"] = "1"
    return env


class Process:
    def __init__(self, name: str, command: list[str], log_dir: Path):
        self.name = name
        self.log_path = log_dir / f"{name}.log"
        self.log = self.log_path.open("ab")
        self.popen = subprocess.Popen(
            command, cwd=ROOT, env=process_env(), stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True
        )

    def kill(self, sig: int = signal.SIGKILL) -> None:
        """Signal the whole process group (a prefork worker's pool children too)."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.popen.pid, sig)

    def stop(self, timeout: float = 15) -> None:
        self.kill(signal.SIGTERM)
        try:
            self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill(signal.SIGKILL)
            self.popen.wait(5)
        self.log.close()

    def pool_children(self) -> list[psutil.Process]:
        try:
            return psutil.Process(self.popen.pid).children(recursive=True)
        except psutil.NoSuchProcess:
            return []

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")


def start_worker(log_dir: Path, name: str = "worker", concurrency: int = 2, pool: str = "prefork") -> Process:
    command = [
        sys.executable, "-m", "celery", "-A", "datamate", "worker",
        "--pool", pool, "--concurrency", str(concurrency), "-l", "info",
        "-n", f"{name}-{os.getpid()}@%h", "--without-gossip", "--without-mingle",
    ]  # fmt: skip
    process = Process(name, command, log_dir)
    wait_for_worker(process)
    return process


def wait_for_worker(process: Process, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.popen.poll() is not None:
            raise RuntimeError(f"{process.name} exited:\n{process.output()[-3000:]}")
        if "ready." in process.output():
            return
        time.sleep(0.1)
    raise RuntimeError(f"{process.name} did not become ready:\n{process.output()[-3000:]}")


def start_beat(log_dir: Path) -> Process:
    command = [
        sys.executable, "-m", "celery", "-A", "datamate", "beat", "-l", "info",
        "--scheduler", "django_celery_beat.schedulers:DatabaseScheduler",
        "--pidfile", str(log_dir / "beat.pid"),
    ]  # fmt: skip
    return Process("beat", command, log_dir)


def purge_queue() -> None:
    app.control.purge()
