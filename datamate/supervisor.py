"""`manage.py up`: run the whole product on one machine.

Starts a private redis-server (unless REDIS_URL is set), the web server (daphne), a Celery
worker and Celery beat as child processes, streams their output with a name prefix, and
stops them all together: on Ctrl-C/SIGTERM (exit 0), or as soon as one of them exits on
its own (exit 1, after showing that child's last lines). The one exception is the private
redis-server: it keeps nothing the others cannot rebuild (the engine re-sends lost tasks,
live views resynchronise), so it is started again on the same port, a few times at most.

Every child runs in its own session, so a terminal's Ctrl-C reaches only the supervisor,
which then stops each child's whole process group (Celery's pool processes included).
Every child also gets PR_SET_PDEATHSIG, so a supervisor killed with SIGKILL takes them
down too.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
import contextlib
from dataclasses import dataclass, field
import os
from pathlib import Path
import selectors
import signal
import socket
import subprocess
import sys
import time
from typing import TextIO

from django.conf import settings
import redis

from datamate.embedded_redis import EmbeddedRedis, die_with_parent, start_embedded_redis
from datamate.runtime_files import demo_password_file, embedded_redis_url_file, read_embedded_redis_url

STOP_TIMEOUT = 10.0
TAIL_LINES = 20
PREFIX_WIDTH = 6
HANDLED_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
RESTARTS_PER_MINUTE = 3


@dataclass
class Child:
    name: str
    process: subprocess.Popen
    # Stopped after everything else: the broker must outlive the workers' shutdown.
    infrastructure: bool = False
    #: Starts the child again (its output piped like the first time); None: it is not restarted.
    restart: Callable[[], subprocess.Popen] | None = None
    restarted_at: deque = field(default_factory=lambda: deque(maxlen=RESTARTS_PER_MINUTE))
    tail: deque = field(default_factory=lambda: deque(maxlen=TAIL_LINES))
    partial: bytes = b""

    def may_restart(self) -> bool:
        """Restartable, and not restarted RESTARTS_PER_MINUTE times in the last minute."""
        recent = len(self.restarted_at) == RESTARTS_PER_MINUTE and time.monotonic() - self.restarted_at[0] < 60
        return self.restart is not None and not recent

    @property
    def prefix(self) -> str:
        return f"{self.name:<{PREFIX_WIDTH}} | "

    def signal_group(self, signum: int) -> None:
        """Signal the child's process group (its pgid is its pid: it leads its own session)."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signum)

    def exit_description(self) -> str:
        code = self.process.returncode
        if code < 0:
            return f"{self.name} exited on signal {signal.Signals(-code).name}"
        return f"{self.name} exited with code {code}"


class Supervisor:
    def __init__(self, out: TextIO = sys.stdout, stop_timeout: float = STOP_TIMEOUT):
        self.out = out
        self.stop_timeout = stop_timeout
        self.children: list[Child] = []
        self.selector = selectors.DefaultSelector()
        self.signals_received: list[int] = []

    # --- output -------------------------------------------------------------------
    def say(self, message: str) -> None:
        for line in message.splitlines() or [""]:
            self.out.write(f"{'system':<{PREFIX_WIDTH}} | {line}\n")
        self.out.flush()

    def pump(self, timeout: float) -> None:
        """Copy whatever the children have written, line by line, with their prefix."""
        for key, _ in self.selector.select(timeout):
            child: Child = key.data
            try:
                data = os.read(key.fd, 65536)
            except BlockingIOError:
                continue
            if data:
                *lines, child.partial = (child.partial + data).split(b"\n")
            else:  # EOF: every process holding the pipe is gone
                lines, child.partial = [child.partial] if child.partial else [], b""
                self.selector.unregister(key.fd)
                child.process.stdout.close()
            for raw in lines:
                line = raw.decode(errors="replace").rstrip("\r")
                child.tail.append(line)
                self.out.write(child.prefix + line + "\n")
        self.out.flush()

    def drain(self, quiet_for: float = 0.2, limit: float = 2.0) -> None:
        """Pump until the children have been silent for `quiet_for` seconds (or `limit`)."""
        deadline = time.monotonic() + limit
        while self.selector.get_map() and time.monotonic() < deadline:
            if not self.selector.select(quiet_for):
                return
            self.pump(0)

    # --- children -----------------------------------------------------------------
    def adopt(
        self,
        name: str,
        process: subprocess.Popen,
        infrastructure: bool = False,
        restart: Callable[[], subprocess.Popen] | None = None,
    ) -> Child:
        """Supervise a process started with stdout=PIPE, stderr=STDOUT in its own session."""
        child = Child(name, process, infrastructure, restart)
        self._watch_output(child)
        self.children.append(child)
        return child

    def _watch_output(self, child: Child) -> None:
        os.set_blocking(child.process.stdout.fileno(), False)
        self.selector.register(child.process.stdout, selectors.EVENT_READ, child)

    def _restart(self, child: Child) -> bool:
        """Start an exited child again; False if it could not be."""
        self.drain()
        self.say(child.exit_description() + "; starting it again")
        with contextlib.suppress(KeyError, ValueError):  # its output may still be registered
            self.selector.unregister(child.process.stdout)
        child.process.stdout.close()
        try:
            child.process = child.restart()
        except (OSError, RuntimeError) as exc:
            self.say(f"could not start {child.name} again: {exc}")
            return False
        child.restarted_at.append(time.monotonic())
        self._watch_output(child)
        return True

    def spawn(self, name: str, command: list[str], env: dict[str, str], cwd: Path) -> Child:
        process = subprocess.Popen(
            command,
            env=env,
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=die_with_parent,
        )
        return self.adopt(name, process)

    # --- lifecycle ----------------------------------------------------------------
    def install_signal_handlers(self) -> dict:
        """Record stop signals; the loops below act on them. Returns the previous handlers."""
        return {signum: signal.signal(signum, self._on_signal) for signum in HANDLED_SIGNALS}

    def _on_signal(self, signum, frame) -> None:
        self.signals_received.append(signum)

    def wait(self, on_tick: Callable[[], None] | None = None) -> int:
        """Stream output until a stop signal (returns 0) or a child exits on its own (1).

        `on_tick` is called about five times a second while everything runs.
        """
        while True:
            if self.signals_received:
                self.say(f"{signal.Signals(self.signals_received[0]).name} received, stopping")
                return 0
            exited = next((c for c in self.children if c.process.poll() is not None), None)
            if exited and exited.may_restart() and self._restart(exited):
                continue
            if exited:
                self.drain()
                self.say(exited.exit_description() + "; stopping everything else")
                self.say(f"last {len(exited.tail)} lines of {exited.name}:")
                for line in exited.tail:
                    self.out.write(exited.prefix + line + "\n")
                self.out.flush()
                return 1
            self.pump(0.2)
            if on_tick:
                on_tick()

    def stop(self) -> None:
        """Stop the applications, then the infrastructure, each group within stop_timeout."""
        self._stop([c for c in self.children if not c.infrastructure])
        self._stop([c for c in self.children if c.infrastructure])
        self.drain()
        self.selector.close()

    def _stop(self, children: list[Child]) -> None:
        signals_before = len(self.signals_received)
        for child in children:
            child.signal_group(signal.SIGTERM)
        deadline = time.monotonic() + self.stop_timeout
        while any(c.process.poll() is None for c in children):
            if time.monotonic() >= deadline:
                self.say(f"still running after {self.stop_timeout:g}s, killing")
                break
            if len(self.signals_received) > signals_before:
                self.say("signal received while stopping, killing")
                break
            self.pump(0.1)
        for child in children:
            # Also reaches processes left in the group after its leader exited.
            child.signal_group(signal.SIGKILL)
            child.process.wait()


def service_commands(host: str, port: int, concurrency: int, var_dir: Path) -> dict[str, list[str]]:
    """The three application processes; docker-compose.yml runs the same commands."""
    python = sys.executable  # the virtualenv's interpreter, so its daphne and celery
    return {
        "web": [python, "-m", "daphne", "-b", host, "-p", str(port), "datamate.asgi:application"],
        "worker": [
            python, "-m", "celery", "-A", "datamate", "worker", "-l", "info",
            "--concurrency", str(concurrency), "-n", "worker@%h",
        ],
        "beat": [
            python, "-m", "celery", "-A", "datamate", "beat", "-l", "info",
            "--scheduler", "django_celery_beat.schedulers:DatabaseScheduler",
            "--schedule", str(var_dir / "celerybeat-schedule"),
            "--pidfile", str(var_dir / "celerybeat.pid"),
        ],
    }  # fmt: skip


def local_address(host: str) -> str:
    """Where to reach a server bound to `host` from this machine."""
    return "127.0.0.1" if host in ("", "0.0.0.0", "::") else host


def browser_url(host: str, port: int) -> str:
    host = local_address(host)
    return f"http://[{host}]:{port}/" if ":" in host else f"http://{host}:{port}/"


def login_hint(var_dir: Path) -> str:
    path = demo_password_file(var_dir)
    if path.exists():
        return f"Login: demo / {path.read_text().strip()}"
    return "No demo login yet: run `python manage.py seed_demo` or `python manage.py createsuperuser`"


def is_listening(host: str, port: int) -> bool:
    try:
        with socket.create_connection((local_address(host), port), timeout=0.2):
            return True
    except OSError:
        return False


def running_embedded_redis(var_dir: Path) -> str:
    """The URL of a redis started by another `up` with this var dir that still answers."""
    url = read_embedded_redis_url(var_dir)
    if not url:
        return ""
    client = redis.Redis.from_url(url, socket_connect_timeout=0.5, socket_timeout=0.5)
    try:
        client.ping()
        return url
    except redis.RedisError:
        return ""  # a leftover from a supervisor that was killed
    finally:
        client.close()


def start_piped_redis(var_dir: Path, port: int | None = None) -> EmbeddedRedis:
    """The private redis-server, its output piped to the supervisor."""
    return start_embedded_redis(var_dir / "redis", port=port, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


def run(out: TextIO = sys.stdout) -> int:
    """Start everything, supervise it, stop it. Returns the process exit code."""
    var_dir = Path(settings.VAR_DIR)
    host = os.environ.get("HOST", "127.0.0.1")
    port = int(os.environ.get("PORT", "8000"))
    concurrency = int(os.environ.get("CELERY_CONCURRENCY", "2"))
    redis_url = os.environ.get("REDIS_URL", "")
    url_file = embedded_redis_url_file(var_dir)

    if not redis_url and (other := running_embedded_redis(var_dir)):
        out.write(
            f"Another `manage.py up` is already running with {var_dir} (its redis answers at {other}).\n"
            f"Stop it first, or give this one its own DATAMATE_VAR_DIR (or delete {url_file} if it is not).\n"
        )
        return 1
    if is_listening(host, port):
        out.write(f"Port {port} on {host} is already in use; choose another with PORT=...\n")
        return 1

    supervisor = Supervisor(out)
    previous_handlers = supervisor.install_signal_handlers()
    wrote_url_file = False
    try:
        if not redis_url:
            try:
                server = start_piped_redis(var_dir)
            except RuntimeError as exc:
                supervisor.say(f"could not start redis-server: {exc}")
                return 1

            def restart_redis() -> subprocess.Popen:
                # On the same port: every other child was told this URL.
                return start_piped_redis(var_dir, server.port).process

            supervisor.adopt("redis", server.process, infrastructure=True, restart=restart_redis)
            redis_url = server.url
            # So shell, CLI runs and other manage.py commands reach this broker too.
            tmp = url_file.with_suffix(".tmp")
            tmp.write_text(redis_url + "\n")
            tmp.replace(url_file)
            wrote_url_file = True
            supervisor.say(f"private redis-server at {redis_url}")
        else:
            supervisor.say("using REDIS_URL from the environment")

        env = {**os.environ, "REDIS_URL": redis_url, "PYTHONUNBUFFERED": "1"}
        for name, command in service_commands(host, port, concurrency, var_dir).items():
            supervisor.spawn(name, command, env, cwd=settings.BASE_DIR)

        announced = False

        def announce_when_listening():
            nonlocal announced
            if not announced and is_listening(host, port):
                announced = True
                supervisor.say(f"DataMate is up: {browser_url(host, port)}")
                supervisor.say(login_hint(var_dir))
                supervisor.say("Press Ctrl-C to stop.")

        return supervisor.wait(on_tick=announce_when_listening)
    finally:
        supervisor.stop()
        if wrote_url_file:
            url_file.unlink(missing_ok=True)
        for signum, handler in previous_handlers.items():
            signal.signal(signum, handler)
        supervisor.say("stopped")
