"""What browser tests share: Debian's Chromium through Playwright, daphne serving the ASGI
application on the test database, a fresh page per test, logging in as a person does.

Plain generators, so each test package declares its fixtures with the scope it needs
(tests/designer/conftest.py, tests/engine/test_run_page_browser.py)."""

from __future__ import annotations

from collections.abc import Iterator
import contextlib
import os
from pathlib import Path
import re
import sys
import time
import urllib.error
import urllib.request

from django.conf import settings
import pytest

from datamate.embedded_redis import free_port
from tests.engine import workers

CHROMIUM = Path("/usr/bin/chromium")
#: Screenshots of every step, kept after the run (var/ is ignored by git).
ARTIFACTS = Path(settings.VAR_DIR) / "test-artifacts"
PASSWORD = "pw-for-tests-1"  # tests.factories.create_user's


def serve_asgi(engine_logs: Path, processes) -> Iterator[str]:
    """daphne serving the ASGI application on a free port, on the test database; yields its
    URL. Afterwards it stops, and so do the worker processes it used (`processes`)."""
    port = free_port()
    command = [sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port), "datamate.asgi:application"]
    process = workers.Process("web", command, engine_logs)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        if process.popen.poll() is not None:
            raise RuntimeError(f"daphne exited:\n{process.output()[-3000:]}")
        try:
            urllib.request.urlopen(f"{url}/static/designer/designer.js", timeout=2).close()
            break
        except (OSError, urllib.error.HTTPError) as exc:
            if time.monotonic() > deadline:
                raise RuntimeError(f"daphne did not answer ({exc}):\n{process.output()[-3000:]}") from None
            time.sleep(0.2)
    yield url
    process.stop()
    processes.stop_all()


def chromium() -> Iterator:
    """A Chromium browser. Playwright's sync API keeps an asyncio loop running on this thread
    while the browser lives, which Django takes for an async context and then refuses ORM
    calls; the tests' ORM calls are plain synchronous code, so allow them until the browser
    is closed."""
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is missing: install Debian's chromium package (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    previous = os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE")
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=str(CHROMIUM))
            yield browser
            browser.close()
    finally:
        if previous is None:
            os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
        else:
            os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = previous


class Screenshots:
    """Numbered screenshots of one test's steps in `folder`."""

    def __init__(self, page, folder: Path):
        self.page = page
        self.folder = folder
        self.count = 0
        with contextlib.suppress(FileNotFoundError):
            for old in self.folder.iterdir():
                old.unlink()
        self.folder.mkdir(parents=True, exist_ok=True)

    def __call__(self, step: str) -> None:
        self.count += 1
        self.page.screenshot(path=self.folder / f"{self.count:02d}-{step}.png")


def open_page(browser, base_url: str, request, artifacts: str) -> Iterator:
    """A fresh browser context on the live server; script errors fail the test. (The
    browser also logs every HTTP error answer to the console, expected ones included.)
    Screenshots go to ARTIFACTS/<artifacts>/<test name>/."""
    context = browser.new_context(base_url=base_url, viewport={"width": 1400, "height": 900})
    context.set_default_timeout(15_000)
    page = context.new_page()
    problems: list[str] = []
    page.on("pageerror", lambda error: problems.append(f"page error: {error}"))
    page.on(
        "console",
        lambda message: (
            message.type == "error"
            and not message.text.startswith("Failed to load resource")
            and problems.append(f"console: {message.text}")
        ),
    )
    page.screenshots = Screenshots(page, ARTIFACTS / artifacts / re.sub(r"[^\w.-]+", "_", request.node.name))
    yield page
    print(f"\nscreenshots: {page.screenshots.folder}")
    context.close()
    assert not problems, "\n".join(problems)


def log_in(page, username: str) -> None:
    """Through the login page, as a person does; it opens the pipeline list."""
    page.goto("/accounts/login/?next=/pipelines/")
    page.fill("#id_username", username)
    page.fill("#id_password", PASSWORD)
    page.click("input[type=submit], button[type=submit]")
    page.wait_for_url("**/pipelines/")
