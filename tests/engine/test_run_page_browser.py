"""The run page as a person sees it: Debian's Chromium on the real ASGI server (daphne, the
run websocket) with a real Celery worker, on the test database.

It proves that a page opened while a run is in progress follows it without a reload: node
states, progress and records, log lines and the run's final state all arrive over the
websocket. It also proves that another user gets a 404 for the page and a refused socket.

The nodes hold on files the test creates (test_step's `wait_for_file`), so each step is
first seen mid-run, then released: no timing guesses.
"""

from __future__ import annotations

from pathlib import Path
import re

from playwright.sync_api import expect
import pytest

from pipelines.engine.runs import start_run
from pipelines.engine.states import RunState
from pipelines.models import NodeRun, Run
from tests import browser as browser_support
from tests.browser import log_in
from tests.engine.conftest import wait_for_run
from tests.engine.test_basic_runs import edge, step
from tests.factories import create_pipeline
from tests.waiting import wait_until

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]

#: For a change to travel worker → Redis → daphne → browser; passing runs need well under 1 s.
LIVE_TIMEOUT = 10_000


# Module-scoped: this file's browser and server stop when it ends. Playwright's event loop
# must not outlive it on the main thread: later tests use async_to_sync, which refuses it.
@pytest.fixture(scope="module")
def browser():
    yield from browser_support.chromium()


@pytest.fixture(scope="module")
def web_server(django_db_setup, engine_logs, processes):
    yield from browser_support.serve_asgi(engine_logs, processes)


@pytest.fixture
def page(browser, web_server, request):
    yield from browser_support.open_page(browser, web_server, request, "run-page")


class Gates:
    """Files the test creates to let a waiting node go on."""

    def __init__(self, folder: Path):
        self.folder = folder
        self.handed_out: set[str] = set()

    def path(self, name: str) -> str:
        self.handed_out.add(name)
        return str(self.folder / name)

    def open(self, name: str) -> None:
        (self.folder / name).touch()

    def open_all_and_drain(self) -> None:
        for name in self.handed_out:
            self.open(name)
        # A run still going when the database is flushed would fail on vanished rows.
        wait_until(lambda: not Run.objects.filter(state__in=RunState.ACTIVE).exists(), 20, "runs to finish")


@pytest.fixture
def gates(engine, tmp_path):
    gates = Gates(tmp_path)
    yield gates
    gates.open_all_and_drain()  # also after a failure: never leave a worker blocked


def node_run(run: Run, key: str) -> NodeRun:
    return NodeRun.objects.get(run=run, node_key=key, iteration="")


def start_and_hold(pipeline, user, key: str) -> Run:
    """Start a run and return once the node `key` is running (held on its gate file)."""
    run = start_run(pipeline, user=user)
    wait_until(lambda: node_run(run, key).state == "running", 20, f"{key} to run")
    return run


def row(page, node_run: NodeRun):
    return page.locator(f'#node-runs tr[data-id="{node_run.pk}"]')


def state_of(page, node_run: NodeRun):
    return row(page, node_run).locator("td").nth(2).locator(".badge")


def records_out_of(page, node_run: NodeRun):
    return row(page, node_run).locator("td").nth(6)


def worker_of(page, node_run: NodeRun):
    return row(page, node_run).locator("td").nth(8)


def progress_bar_of(page, node_run: NodeRun):
    return row(page, node_run).locator(".bar span")


def test_open_run_page_follows_the_run_live_without_a_reload(engine, page, alice, gates):
    # gate holds the run at its start; work then logs, reports its records and holds again.
    pipeline = create_pipeline(
        alice,
        {
            "name": "watched",
            "nodes": [
                step("gate", wait_for_file=gates.path("gate")),
                step("work", log="working on the batch", progress_steps=2, wait_for_file=gates.path("work")),
            ],
            "edges": [edge("gate", "work")],
        },
    )
    log_in(page, "alice")
    run = start_and_hold(pipeline, alice, "gate")
    gate, work = node_run(run, "gate"), node_run(run, "work")

    page.goto(f"/runs/{run.pk}/")
    # Set once: still there at the end means every later change came without a reload.
    page.evaluate("window.openedOnce = true")
    expect(page.locator("#live-status")).to_have_attribute("data-status", "live")
    expect(page.locator("#run-state .badge")).to_have_text("running")
    expect(state_of(page, gate)).to_have_text("running")
    expect(state_of(page, work)).to_have_text("pending")
    expect(worker_of(page, gate)).to_have_text(re.compile(r"^worker-\d+@.+ pid \d+$"))  # rendered by the server
    expect(worker_of(page, work)).to_have_text("")
    expect(records_out_of(page, work)).to_have_text("")
    expect(progress_bar_of(page, work)).to_have_attribute("style", re.compile(r"width: 0%"))
    expect(page.locator("#logs")).to_have_text("No log lines yet.")
    expect(page.locator("#cancel-run")).to_be_visible()

    gates.open("gate")
    expect(state_of(page, gate)).to_have_text("succeeded", timeout=LIVE_TIMEOUT)
    expect(state_of(page, work)).to_have_text("running", timeout=LIVE_TIMEOUT)
    expect(worker_of(page, work)).to_have_text(re.compile(r"^worker-\d+@.+ pid \d+$"))  # from the live event
    # work's progress reports, seen while it still runs: 2 records out, the bar full.
    expect(records_out_of(page, work)).to_have_text("2", timeout=LIVE_TIMEOUT)
    expect(progress_bar_of(page, work)).to_have_attribute("style", re.compile(r"width: 100%"))
    log_line = page.locator("#logs li.log")
    expect(log_line).to_have_count(1, timeout=LIVE_TIMEOUT)
    expect(log_line.locator(".log-node")).to_have_text("work")
    expect(log_line.locator(".log-msg")).to_have_text("working on the batch")
    expect(page.locator("#run-state .badge")).to_have_text("running")

    gates.open("work")
    expect(state_of(page, work)).to_have_text("succeeded", timeout=LIVE_TIMEOUT)
    expect(page.locator("#run-state .badge")).to_have_text("succeeded", timeout=LIVE_TIMEOUT)
    expect(page).to_have_title(re.compile(r"^\[succeeded\] "))
    # A finished run offers re-run instead of cancel.
    expect(page.locator("#cancel-run")).to_be_hidden()
    expect(page.locator("#rerun")).to_be_visible()
    expect(records_out_of(page, work)).to_have_text("2")

    assert page.evaluate("window.openedOnce") is True
    assert wait_for_run(run).state == "succeeded"


def test_another_user_gets_404_and_a_refused_socket(engine, page, alice, bob, gates):
    pipeline = create_pipeline(
        alice, {"name": "alice's secret", "nodes": [step("secret", wait_for_file=gates.path("secret"))]}
    )
    run = start_and_hold(pipeline, alice, "secret")
    log_in(page, "bob")

    response = page.goto(f"/runs/{run.pk}/")
    assert response.status == 404
    expect(page.locator("body")).not_to_contain_text("alice's secret")

    # The same socket the page would open, from bob's session: closed with 4403 (not
    # allowed) before any snapshot of the run is sent.
    refusal = page.evaluate(
        """(path) => new Promise((resolve) => {
            const socket = new WebSocket("ws://" + location.host + path);
            const messages = [];
            socket.onmessage = (message) => messages.push(message.data);
            socket.onclose = (event) => resolve({code: event.code, messages});
            // A socket left open would otherwise hang the test.
            setTimeout(() => resolve({code: "still open", messages}), 5000);
        })""",
        f"/ws/runs/{run.pk}/",
    )
    assert refusal == {"code": 4403, "messages": []}
    assert node_run(run, "secret").state == "running"  # bob's visit changed nothing
