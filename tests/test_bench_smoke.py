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


@pytest.mark.slow
@pytest.mark.timeout(180)
def test_engine_overhead_benchmark_runs_and_reports_every_figure(tmp_path):
    env = dict(os.environ)
    # The benchmark starts its own redis-server: with the suite's, the suite's worker would
    # take the benchmark's tasks. With DATABASE_URL it creates and drops its own database.
    env.pop("REDIS_URL", None)
    env.pop("DATAMATE_VAR_DIR", None)
    env["BENCH_WAIT_TIMEOUT"] = "30"  # a stuck run fails with the benchmark's diagnosis
    report = tmp_path / "figures.json"
    process = subprocess.Popen(
        [sys.executable, "bench/engine_overhead.py", "--runs", "1", "--json", str(report)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        output, _ = process.communicate(timeout=120)
    except subprocess.TimeoutExpired:
        process.terminate()  # SIGTERM: the benchmark stops its worker and Redis, drops its database
        output, _ = process.communicate(timeout=30)
        pytest.fail(f"the benchmark took over 120 s:\n{output}")
    assert process.returncode == 0, output
    figures = json.loads(report.read_text())
    assert figures["database"] == ("postgresql" if os.environ.get("DATABASE_URL") else "sqlite")
    for name in FIGURES:
        assert isinstance(figures[name], float) and figures[name] > 0, (name, figures)
    assert "W1 chain of 50" in output


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_data_throughput_benchmark_runs_through_the_engine_and_keeps_the_hand_loops_records(tmp_path):
    env = dict(os.environ)
    env.pop("REDIS_URL", None)  # its own redis-server and worker, as for the engine benchmark
    env.pop("DATAMATE_VAR_DIR", None)
    env["BENCH_WAIT_TIMEOUT"] = "60"
    report = tmp_path / "data.json"
    process = subprocess.Popen(
        [sys.executable, "bench/data_throughput.py", "--records", "2000", "--json", str(report)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        output, _ = process.communicate(timeout=180)
    except subprocess.TimeoutExpired:
        process.terminate()  # SIGTERM: the benchmark stops its worker and Redis
        output, _ = process.communicate(timeout=30)
        pytest.fail(f"the benchmark took over 180 s:\n{output}")
    assert process.returncode == 0, output
    figures = json.loads(report.read_text())
    assert figures["records"] == 2000 and figures["same_records"] is True
    for name in ("ratio_1_worker", "ratio_2_workers", "rss_growth_2x", "hand_records_per_s"):
        assert isinstance(figures[name], float) and figures[name] > 0, (name, figures)
    assert "same records kept as the hand loop: yes" in output


@pytest.mark.slow
@pytest.mark.timeout(180)
@pytest.mark.skipif(not Path("/usr/bin/chromium").exists(), reason="Debian's chromium is not installed")
def test_designer_load_benchmark_runs_and_reports_its_figures(tmp_path):
    env = {key: value for key, value in os.environ.items() if key not in ("REDIS_URL", "DATAMATE_VAR_DIR")}
    report = tmp_path / "figures.json"
    result = subprocess.run(
        [sys.executable, "bench/designer_load.py", "--runs", "1", "--nodes", "20", "--json", str(report)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=150,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    figures = json.loads(report.read_text())
    for name in ("tti", "p50", "p95"):
        assert figures[f"{name}_ms"] > 0 and figures[f"{name}_baseline_ms"] > 0, figures
        assert figures[f"{name}_ratio"] == pytest.approx(figures[f"{name}_ms"] / figures[f"{name}_baseline_ms"])
    assert "Designer load:" in result.stdout
