"""The benchmarks run end to end with tiny sizes: their own database, Redis and worker, every
workload, a JSON report. Speed is what the benchmarks measure, not what these tests assert."""

import json
import os
from pathlib import Path
import subprocess
import sys

import pytest

ROOT = Path(__file__).resolve().parent.parent
FIGURES = (
    "w1_ratio", "w2_ratio", "w3_ms", "event_p95_ms", "w1_ms", "w2_ms", "w1_celery_ms",
    "w2_celery_ms", "w3_celery_ms", "event_p50_ms", "per_node_ms",
)  # fmt: skip


def run_benchmark(script: str, *args: str, timeout: float, wait_timeout: int = 60) -> str:
    """Run a benchmark as a user would; returns its output. It starts its own redis-server
    and worker (with the suite's Redis, the suite's worker would take the benchmark's
    tasks) and, with DATABASE_URL, creates and drops its own database."""
    env = {key: value for key, value in os.environ.items() if key not in ("REDIS_URL", "DATAMATE_VAR_DIR")}
    env["BENCH_WAIT_TIMEOUT"] = str(wait_timeout)  # a stuck run fails with the benchmark's diagnosis
    process = subprocess.Popen(
        [sys.executable, f"bench/{script}", *args],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        output, _ = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.terminate()  # SIGTERM: the benchmark stops what it started, drops its database
        output, _ = process.communicate(timeout=30)
        pytest.fail(f"{script} took over {timeout:g} s:\n{output}")
    assert process.returncode == 0, output
    return output


@pytest.mark.slow
@pytest.mark.timeout(180)
def test_engine_overhead_benchmark_runs_and_reports_every_figure(tmp_path):
    report = tmp_path / "figures.json"
    output = run_benchmark("engine_overhead.py", "--runs", "1", "--json", str(report), timeout=120, wait_timeout=30)
    figures = json.loads(report.read_text())
    assert figures["database"] == ("postgresql" if os.environ.get("DATABASE_URL") else "sqlite")
    for name in FIGURES:
        assert isinstance(figures[name], float) and figures[name] > 0, (name, figures)
    assert "W1 chain of 50" in output


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_data_throughput_benchmark_runs_through_the_engine_and_keeps_the_hand_loops_records(tmp_path):
    report = tmp_path / "data.json"
    output = run_benchmark("data_throughput.py", "--records", "2000", "--json", str(report), timeout=180)
    figures = json.loads(report.read_text())
    assert figures["records"] == 2000 and figures["same_records"] is True
    for name in ("ratio_1_worker", "ratio_2_workers", "rss_growth_2x", "hand_records_per_s"):
        assert isinstance(figures[name], float) and figures[name] > 0, (name, figures)
    assert "same records kept as the hand loop: yes" in output


@pytest.mark.slow
@pytest.mark.timeout(180)
@pytest.mark.skipif(not Path("/usr/bin/chromium").exists(), reason="Debian's chromium is not installed")
def test_designer_load_benchmark_runs_and_reports_its_figures(tmp_path):
    report = tmp_path / "figures.json"
    output = run_benchmark("designer_load.py", "--runs", "1", "--nodes", "20", "--json", str(report), timeout=150)
    figures = json.loads(report.read_text())
    for name in ("tti", "p50", "p95"):
        assert figures[f"{name}_ms"] > 0 and figures[f"{name}_baseline_ms"] > 0, figures
        assert figures[f"{name}_ratio"] == pytest.approx(figures[f"{name}_ms"] / figures[f"{name}_baseline_ms"])
    assert "Designer load:" in output


@pytest.mark.slow
@pytest.mark.timeout(180)
def test_soak_benchmark_kills_a_worker_and_reports_nothing_lost(tmp_path):
    report = tmp_path / "soak.json"
    output = run_benchmark("soak.py", "--runs", "3", "--kills", "1", "--json", str(report), timeout=120)
    figures = json.loads(report.read_text())
    assert figures["database"] == ("postgresql" if os.environ.get("DATABASE_URL") else "sqlite")
    assert (figures["runs"], figures["runs_succeeded"], figures["effects_expected"]) == (3, 3, 33), figures
    assert figures["duplicate_effects"] == figures["lost_effects"] == figures["stuck_node_runs"] == 0, figures
    assert figures["held"] is True
    assert "duplicate effects" in output and "wall time (s)" in output
