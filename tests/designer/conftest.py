"""Browser tests of the designer: Debian's Chromium driven by Playwright against daphne
(pages, API, the static bundle and websockets) and the engine tests' real Celery worker,
all on the test database.

One browser and one web server serve every test of this package; each test gets a fresh
browser context (cookies, storage), so tests do not see each other's logins.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests import browser as browser_support
from tests.browser import log_in  # noqa: F401  (the designer tests import it from here)


@pytest.fixture(scope="package")
def web_server(django_db_setup, engine_logs, processes) -> Iterator[str]:
    """daphne on the test database. After the package, it stops, and so does this package's
    worker: the rest of the suite has its own."""
    yield from browser_support.serve_asgi(engine_logs, processes)


@pytest.fixture(scope="package")
def browser():
    """One Chromium for the package."""
    yield from browser_support.chromium()


@pytest.fixture
def page(browser, web_server, request):
    yield from browser_support.open_page(browser, web_server, request, "designer")


# --- what a person does on the canvas -------------------------------------------------


def node(page, key: str):
    return page.locator(f'.react-flow__node[data-id="{key}"]')


def handle(page, key: str, name: str):
    return node(page, key).locator(f'.react-flow__handle[data-handleid="{name}"]')


def drop_from_palette(page, type_key: str, x: int, y: int) -> None:
    """Drags a node type from the palette onto the canvas at (x, y) of the pane."""
    page.drag_and_drop(
        f'.dm-palette-item[data-type="{type_key}"]', ".react-flow__pane", target_position={"x": x, "y": y}
    )


def connect(page, source: str, source_handle: str, target: str) -> None:
    handle(page, source, source_handle).drag_to(handle(page, target, "in"))


def save_version(page, message: str) -> None:
    page.click("#save")
    page.fill("#save-message", message)
    page.click(".dm-dialog button[type=submit]")


def open_designer(page, pipeline) -> None:
    page.goto(f"/pipelines/{pipeline.pk}/designer/")
    page.locator(".dm-dirty").get_by_text("All changes saved").wait_for()
