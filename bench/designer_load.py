"""Designer load: time to interactive and frame time while dragging, for a 300-node pipeline
against a 2-node one (the baseline), side by side in the same browser.

    .venv/bin/python bench/designer_load.py [--runs 5] [--nodes 300] [--json FILE]

Self-contained: a temp var dir with a fresh SQLite database and a private redis-server,
one daphne serving the site (the committed bundle in static/designer/), and Debian's
Chromium (/usr/bin/chromium) driven by Playwright. Everything is stopped at the end.

Time to interactive: from navigation start (performance.now() = 0) until every node card
is on the canvas, measured, and the toolbar says "All changes saved" (the document and the
catalogue are loaded). Frame time while dragging: the gaps between animation frames while
a node is dragged 60 steps across the canvas. Median over --runs after one warm-up.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import os
from pathlib import Path
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

CHROMIUM = Path("/usr/bin/chromium")
USERNAME, PASSWORD = "bench", "bench-designer-pw-1"
DRAG_STEPS = 60
COLUMNS = 20


def document(count: int, name: str) -> dict:
    """input → clean_1 → … → output, laid out in rows of COLUMNS nodes."""
    keys = ["input"] + [f"clean_{i}" for i in range(1, count - 1)] + ["output"]
    types = ["input_dataset"] + ["data_cleaning"] * (count - 2) + ["output_dataset"]
    configs = {
        "input_dataset": {"dataset": "raw"},
        "data_cleaning": {"operators": [{"name": "exact_dedup"}]},
        "output_dataset": {"dataset": "out"},
    }
    nodes = [
        {
            "key": key,
            "type": type_,
            "config": configs[type_],
            "position": {"x": (index % COLUMNS) * 280, "y": (index // COLUMNS) * 200},
        }
        for index, (key, type_) in enumerate(zip(keys, types, strict=True))
    ]
    edges = [{"source": a, "source_handle": "out", "target": b} for a, b in itertools.pairwise(keys)]
    return {"name": name, "nodes": nodes, "edges": edges}


@contextlib.contextmanager
def site(var_dir: Path, node_count: int):
    """Database, Redis and daphne; yields (base URL, {label: designer path})."""
    os.environ.update(
        DJANGO_SETTINGS_MODULE="datamate.settings",
        DATAMATE_VAR_DIR=str(var_dir),
        DATABASE_URL=f"sqlite:///{var_dir / 'bench.sqlite3'}",
        DEBUG="0",
    )
    from datamate.embedded_redis import free_port, start_embedded_redis

    redis = start_embedded_redis(var_dir / "redis")
    os.environ["REDIS_URL"] = redis.url
    daphne = None
    try:
        import django

        django.setup()
        from django.contrib.auth import get_user_model
        from django.core.management import call_command

        from pipelines import services

        call_command("migrate", verbosity=0)
        user = get_user_model().objects.create_user(USERNAME, password=PASSWORD)
        pipelines = {
            f"{node_count} nodes": services.import_pipeline(owner=user, document=document(node_count, "big")),
            "2 nodes": services.import_pipeline(owner=user, document=document(2, "small")),
        }
        port = free_port()
        log = (var_dir / "daphne.log").open("wb")
        daphne = subprocess.Popen(
            [sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port), "datamate.asgi:application"],
            cwd=ROOT,
            env=dict(os.environ),
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(f"{url}/static/designer/designer.js", timeout=2).close()
                break
            except OSError:
                if daphne.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError((var_dir / "daphne.log").read_text()[-3000:]) from None
                time.sleep(0.2)
        yield url, {label: f"/pipelines/{p.pk}/designer/" for label, p in pipelines.items()}
    finally:
        if daphne is not None:
            daphne.terminate()
            daphne.wait(15)
        redis.stop()


def time_to_interactive(page, path: str, count: int) -> float:
    page.goto(path)
    page.wait_for_function(
        """count => document.querySelectorAll('.react-flow__node').length === count
            && !document.querySelector('.react-flow__node[style*="visibility: hidden"]')
            && document.querySelector('.dm-dirty')?.textContent === 'All changes saved'""",
        arg=count,
        polling="raf",
        timeout=60_000,
    )
    return page.evaluate("performance.now()")


def drag_frame_times(page) -> list[float]:
    """Gaps between animation frames while the node nearest the middle is dragged."""
    box = page.locator(".react-flow__pane").bounding_box()
    middle = {"x": box["x"] + box["width"] / 2, "y": box["y"] + box["height"] / 2}
    key = page.evaluate(
        """middle => {
            let best = null, distance = Infinity;
            for (const node of document.querySelectorAll('.react-flow__node')) {
                const r = node.getBoundingClientRect();
                const d = Math.hypot(r.x + r.width / 2 - middle.x, r.y + r.height / 2 - middle.y);
                if (d < distance) { distance = d; best = node.dataset.id; }
            }
            return best;
        }""",
        middle,
    )
    card = page.locator(f'.react-flow__node[data-id="{key}"] .dm-node-head').bounding_box()
    x, y = card["x"] + card["width"] / 2, card["y"] + card["height"] / 2
    page.mouse.move(x, y)
    page.mouse.down()
    page.evaluate(
        """() => {
            window.__frames = [];
            let last = performance.now();
            const tick = now => {
                window.__frames.push(now - last);
                last = now;
                window.__frameLoop = requestAnimationFrame(tick);
            };
            window.__frameLoop = requestAnimationFrame(tick);
        }"""
    )
    node = page.locator(f'.react-flow__node[data-id="{key}"]')
    before = node.get_attribute("style")
    for step in range(1, DRAG_STEPS + 1):
        page.mouse.move(x + step * 4, y + step * 2)
    page.mouse.up()
    frames = page.evaluate("() => { cancelAnimationFrame(window.__frameLoop); return window.__frames.slice(1); }")
    if node.get_attribute("style") == before:
        raise RuntimeError(f"node {key} did not move: the drag measured nothing")
    return frames


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def measure(url: str, paths: dict[str, str], runs: int, progress) -> dict[str, dict[str, float]]:
    from playwright.sync_api import sync_playwright

    figures: dict[str, dict[str, float]] = {}
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM))
        context = browser.new_context(base_url=url, viewport={"width": 1400, "height": 900})
        page = context.new_page()
        page.goto("/api-auth/login/?next=/pipelines/")
        page.fill("#id_username", USERNAME)
        page.fill("#id_password", PASSWORD)
        page.click("input[type=submit], button[type=submit]")
        page.wait_for_url("**/pipelines/")
        samples: dict[str, dict[str, list[float]]] = {label: {"tti": [], "p50": [], "p95": []} for label in paths}
        for run in range(runs + 1):  # run 0 warms up (bundle cache, JIT)
            for label, path in paths.items():  # interleaved, so drift hits both alike
                count = int(label.split()[0])
                tti = time_to_interactive(page, path, count)
                frames = drag_frame_times(page)
                if run:
                    samples[label]["tti"].append(tti)
                    samples[label]["p50"].append(percentile(frames, 0.5))
                    samples[label]["p95"].append(percentile(frames, 0.95))
            progress(f"run {run}/{runs} done" if run else "warm-up done")
        browser.close()
    for label, values in samples.items():
        figures[label] = {name: statistics.median(series) for name, series in values.items()}
    return figures


def report(figures: dict[str, dict[str, float]], runs: int) -> dict[str, float]:
    big, small = list(figures)
    rows = [
        ("time to interactive (ms)", "tti"),
        ("drag frame time p50 (ms)", "p50"),
        ("drag frame time p95 (ms)", "p95"),
    ]
    print(f"\nDesigner load: {big} against {small} (baseline), median of {runs} runs, Chromium headless\n")
    print(f"{'figure':<28}{big:>12}{small:>12}{'ratio':>8}")
    result: dict[str, float] = {}
    for title, name in rows:
        ratio = figures[big][name] / figures[small][name]
        print(f"{title:<28}{figures[big][name]:>12.1f}{figures[small][name]:>12.1f}{ratio:>8.2f}")
        result[f"{name}_ms"], result[f"{name}_baseline_ms"] = figures[big][name], figures[small][name]
        result[f"{name}_ratio"] = ratio
    print("\nA frame every 16.7 ms is 60 frames per second.")
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5, help="timed runs (after 1 warm-up)")
    parser.add_argument("--nodes", type=int, default=300, help="nodes of the large pipeline")
    parser.add_argument("--json", type=Path, help="write the figures to this file")
    args = parser.parse_args(argv)
    if args.runs < 1 or args.nodes < 3:
        parser.error("--runs must be at least 1 and --nodes at least 3")
    if not CHROMIUM.exists():
        raise SystemExit(f"{CHROMIUM} is missing: apt-get install chromium")

    def progress(message: str) -> None:
        print(f"[bench] {message}", file=sys.stderr, flush=True)

    with tempfile.TemporaryDirectory(prefix="datamate-designer-bench-") as tmp, site(Path(tmp), args.nodes) as served:
        url, paths = served
        progress(f"serving {url}")
        figures = report(measure(url, paths, args.runs, progress), args.runs)
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
