"""`manage.py run_pipeline` as a real subprocess, on the test database and real workers."""

import os
import pty
import select
import subprocess
import sys
import time

from pipelines.engine.runtime import cancel_run
from pipelines.models import NodeRun, Run
from tests.engine.conftest import wait_for_run
from tests.engine.workers import ROOT, process_env
from tests.factories import create_pipeline
from tests.waiting import wait_until


def step(key, **config):
    return {"key": key, "type": "test_step", "config": config}


def edge(source, target, handle="out"):
    return {"source": source, "source_handle": handle, "target": target}


def run_command(*args, timeout=60):
    return subprocess.run(
        [sys.executable, "manage.py", "run_pipeline", *map(str, args)],
        cwd=ROOT,
        env=process_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def params_pipeline(owner, name="cli"):
    doc = {
        "name": name,
        "parameters": [
            {"name": "n", "type": "integer", "required": True},
            {"name": "flag", "type": "boolean", "default": False},
            {"name": "label", "type": "string", "default": ""},
        ],
        "nodes": [step("fetch", value="{{ params.n }}", progress_steps=4, sleep=0.4), step("store")],
        "edges": [edge("fetch", "store")],
    }
    return create_pipeline(owner, doc)


def test_wait_prints_node_lines_and_exits_0_on_success(engine, alice):
    pipeline = params_pipeline(alice)
    result = run_command(pipeline.pk, "--param", "n=3", "--param", "flag=true", "--param", "label=hi there", "--wait")
    assert result.returncode == 0, result.stdout + result.stderr
    run = Run.objects.get()
    assert run.trigger == "cli"
    assert run.params == {"n": 3, "flag": True, "label": "hi there"}  # JSON when it parses, else a string
    assert run.state == "succeeded"
    lines = result.stdout.splitlines()
    assert lines[0] == f"run {run.pk} of 'cli' (pipeline {pipeline.pk}) v1 started"
    # Not a terminal: one plain line per state change, no ANSI escapes.
    assert "\x1b" not in result.stdout
    changes = [line.split()[1:3] for line in lines[1:-1]]
    assert ["fetch", "succeeded"] in changes
    assert ["store", "succeeded"] in changes
    assert changes.index(["fetch", "succeeded"]) < changes.index(["store", "succeeded"])
    assert any(line.split()[1:] == ["fetch", "succeeded", "out", "4"] for line in lines)
    assert lines[-1].startswith(f"run {run.pk} succeeded in ")


def test_wait_exits_1_on_a_failing_pipeline(engine, alice):
    doc = {"name": "broken", "nodes": [step("ok"), step("bad", fail_always=True)], "edges": [edge("ok", "bad")]}
    pipeline = create_pipeline(alice, doc)
    result = run_command("broken", "--wait")  # by name
    assert result.returncode == 1, result.stdout + result.stderr
    assert any(line.split()[1:3] == ["bad", "failed"] for line in result.stdout.splitlines())
    assert "bad: planned failure on attempt 1" in result.stdout
    assert Run.objects.get().pipeline == pipeline


def test_bad_params_exit_2_naming_the_parameter(engine, alice):
    pipeline = params_pipeline(alice)
    result = run_command(pipeline.pk, "--param", "n=three", "--param", "nope=1", "--wait")
    assert result.returncode == 2
    assert "params.n: must be an integer" in result.stderr
    assert "params.nope: is not a parameter of this pipeline" in result.stderr

    missing = run_command(pipeline.pk)
    assert missing.returncode == 2
    assert "params.n: is required" in missing.stderr

    malformed = run_command(pipeline.pk, "--param", "n")
    assert malformed.returncode == 2
    assert "--param must be name=value" in malformed.stderr

    version = run_command(pipeline.pk, "--param", "n=1", "--version", "9")
    assert version.returncode == 2
    assert "version" in version.stderr
    assert not Run.objects.exists()


def test_pipeline_by_name_must_be_unique_and_user_must_see_it(engine, alice, bob):
    first = params_pipeline(alice, name="twin")
    second = params_pipeline(alice, name="twin")
    result = run_command("twin", "--param", "n=1")
    assert result.returncode == 2
    assert f"ids {first.pk}, {second.pk}" in result.stderr

    assert run_command("nothing-called-this").returncode == 2
    hidden = run_command(first.pk, "--param", "n=1", "--user", "bob")
    assert hidden.returncode == 2
    assert "no pipeline" in hidden.stderr
    assert not Run.objects.exists()


def test_without_wait_prints_the_run_id(engine, alice):
    pipeline = params_pipeline(alice)
    result = run_command(pipeline.pk, "--param", "n=2", "--user", "alice")
    assert result.returncode == 0, result.stderr
    run = Run.objects.get(pk=int(result.stdout.strip()))
    assert run.created_by == alice
    assert wait_for_run(run).state == "succeeded"


def test_wait_timeout_exits_4(engine, alice):
    pipeline = create_pipeline(alice, {"name": "slow", "nodes": [step("slow", progress_steps=20, sleep=6)]})
    result = run_command(pipeline.pk, "--wait", "--timeout", "1")
    assert result.returncode == 4, result.stdout + result.stderr
    assert "still running after 1 s" in result.stdout
    from pipelines.engine.runtime import cancel_run

    cancel_run(Run.objects.get())


def test_wait_exits_3_when_the_run_is_cancelled(engine, alice):
    pipeline = create_pipeline(
        alice, {"name": "blocking", "nodes": [step("block", progress_steps=100, sleep=20), step("after")],
                "edges": [edge("block", "after")]},
    )  # fmt: skip
    process = subprocess.Popen(
        [sys.executable, "manage.py", "run_pipeline", str(pipeline.pk), "--wait"],
        cwd=ROOT,
        env=process_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_until(lambda: NodeRun.objects.filter(node_key="block", progress__gt=0).exists(), what="the blocking node")
        assert process.poll() is None  # still waiting on the run
        run = Run.objects.get()
        assert cancel_run(run) is True
        stdout, stderr = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 3, stdout + stderr
    assert stdout.splitlines()[-1].startswith(f"run {run.pk} cancelled")
    assert wait_for_run(run).state == "cancelled"


def test_on_a_terminal_the_display_is_redrawn_in_place(engine, alice):
    pipeline = params_pipeline(alice)
    primary, secondary = pty.openpty()
    process = subprocess.Popen(
        [sys.executable, "manage.py", "run_pipeline", str(pipeline.pk), "--param", "n=1", "--wait"],
        cwd=ROOT,
        env={**process_env(), "COLUMNS": "120", "LINES": "40"},
        stdin=secondary,
        stdout=secondary,
        stderr=secondary,
    )
    os.close(secondary)
    output = b""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        ready, _, _ = select.select([primary], [], [], 0.5)
        if ready:
            try:
                chunk = os.read(primary, 65536)
            except OSError:  # the child closed the terminal
                break
            if not chunk:
                break
            output += chunk
        elif process.poll() is not None:
            break
    os.close(primary)
    assert process.wait(10) == 0, output.decode(errors="replace")
    text = output.decode(errors="replace")
    assert "\x1b[2F" in text  # cursor up over the two node lines: redrawn in place
    assert "\x1b[2K" in text
    assert "[####################] 100%" in text
    assert "fetch" in text and "store" in text
