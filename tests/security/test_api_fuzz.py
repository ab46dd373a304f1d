"""schemathesis against /api/schema/: every operation, authenticated, answers no 5xx and
only what the schema declares.

The app runs in-process (WSGI) on the test database; a real Celery worker executes the runs
and node tests the fuzzer starts. Fixture objects (pipeline, run, dataset, schedule, secret,
saved task, template) exist first, so half of the cases of an operation with path parameters
reach a real object instead of a 404. Generation is derandomized and bounded:
DATAMATE_FUZZ_EXAMPLES cases per operation and generation mode (positive and negative);
raise it for a long run. Every failure is collected, so one run lists them all.
"""

from __future__ import annotations

import io
import os
import re
import time

from django.core.wsgi import get_wsgi_application
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable
import orjson
import pytest
from rest_framework.authtoken.models import Token
import schemathesis
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core.failures import Failure, FailureGroup
from schemathesis.core.result import Ok
from schemathesis.specs.openapi.checks import content_type_conformance, response_schema_conformance

from datasets import services as dataset_services
from nodes import saved_tasks, secrets
from pipelines import schedules, services
from pipelines.engine import events
from pipelines.engine.runs import start_run
from pipelines.engine.states import RunState
from pipelines.models import Run
from tests.engine import workers
from tests.factories import create_pipeline, create_user, edge, node

EXAMPLES = int(os.environ.get("DATAMATE_FUZZ_EXAMPLES", "3"))
CHECKS = [not_a_server_error, response_schema_conformance, content_type_conformance]
# A whole operation may not take longer than this (a hung request is a defect too).
OPERATION_BUDGET_SECONDS = 60 + 2 * EXAMPLES


@pytest.fixture(scope="module")
def worker(django_db_setup, django_db_blocker, tmp_path_factory):
    workers.purge_queue()
    process = workers.start_worker(tmp_path_factory.mktemp("fuzz-worker"), name="fuzz-worker", concurrency=1)
    yield process
    process.stop()


def _document(name: str) -> dict:
    return {
        "name": name,
        "parameters": [{"name": "n", "type": "integer", "default": 1}],
        # test_step (tests/engine/node_types.py) needs no input, so a run of it succeeds.
        "nodes": [node("first", "test_step", config={"value": "{{ params.n }}"}), node("second", "test_step")],
        "edges": [edge("first", "second")],
    }


def _world(user) -> dict[str, object]:
    """One object of each kind the API addresses, owned by the fuzzing user."""
    pipeline = create_pipeline(user, _document("fuzzed"))
    services.save_graph(pipeline, {**_document("fuzzed"), "description": "v2"}, author=user)
    run = start_run(pipeline, {}, trigger=Run.Trigger.API, user=user)
    deadline = time.monotonic() + 60
    while run.state not in RunState.FINISHED and time.monotonic() < deadline:
        time.sleep(0.05)
        run.refresh_from_db()
    assert run.state == RunState.SUCCEEDED, run.state  # so run paths reach a run with node runs and logs
    dataset = dataset_services.create_dataset(owner=user, name="fuzzed")
    rows = b"".join(orjson.dumps({"text": f"row {i}", "n": i}) + b"\n" for i in range(5))
    dataset_services.import_version(dataset, dataset_services.Source.upload(io.BytesIO(rows), "rows.jsonl"))
    schedule = schedules.create_schedule(pipeline, cron="0 2 * * *", params={"n": 2})
    secret = secrets.create_secret(owner=user, name="FUZZ_TOKEN", value="not-a-real-secret")
    task = saved_tasks.create_saved_task(
        owner=user, kind="cleaning", name="fuzzed", config={"operators": [{"name": "exact_dedup"}]}
    )
    template = services.save_as_template(pipeline, owner=user, name="fuzzed", description="")
    return {
        "pipelines": pipeline.pk,
        "runs": run.pk,
        "schedules": schedule.pk,
        "datasets": dataset.pk,
        "versions": 1,
        "secrets": secret.pk,
        "saved-tasks": task.pk,
        "templates": template.pk,
        "node-types": "data_cleaning",
        "operators": "exact_dedup",
        "nodes": "first",
    }


def _real_path_parameters(path: str, world: dict[str, object]) -> dict[str, object]:
    """{param: id of a real object}, from the collection named before each `{param}`."""
    return {
        param: world[collection]
        for collection, param in re.findall(r"/([a-z-]+)/\{(\w+)\}", path)
        if collection in world
    }


def _strategy(operation, mode: GenerationMode, world: dict[str, object]):
    generated = operation.as_strategy(generation_mode=mode)
    real = _real_path_parameters(operation.path, world)
    if not real:
        return generated
    return st.one_of(operation.as_strategy(generation_mode=mode, path_parameters=real), generated)


def _order(operation) -> tuple[int, str]:
    # Deletions last, so the other operations still find the fixture objects.
    return (operation.method.upper() == "DELETE", operation.label)


def _run_examples(strategy, check) -> None:
    @settings(
        max_examples=EXAMPLES,
        derandomize=True,
        database=None,
        deadline=None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(case=strategy)
    def examples(case):
        check(case)

    examples()


@pytest.mark.slow
@pytest.mark.timeout(120 + 60 * EXAMPLES)  # a long run (a high DATAMATE_FUZZ_EXAMPLES) gets the time it needs
def test_every_operation_answers_without_server_errors_or_schema_violations(transactional_db, worker, record_property):
    user = create_user("fuzzer")
    token = Token.objects.create(user=user).key
    world = _world(user)
    schema = schemathesis.openapi.from_wsgi("/api/schema/", get_wsgi_application())
    operations = sorted((result.ok() for result in schema.get_all_operations() if isinstance(result, Ok)), key=_order)
    assert len(operations) >= 50, [op.label for op in operations]
    invalid = [str(result.err()) for result in schema.get_all_operations() if not isinstance(result, Ok)]
    assert not invalid, invalid

    failures: list[str] = []
    cases: dict[str, int] = {}
    statuses: dict[int, int] = {}
    timings: dict[str, float] = {}

    def check(label: str, case) -> None:
        cases[label] = cases.get(label, 0) + 1
        response = case.call(headers={"Authorization": f"Token {token}"})
        statuses[response.status_code] = statuses.get(response.status_code, 0) + 1
        try:
            case.validate_response(response, checks=CHECKS)
        except (Failure, FailureGroup) as exc:
            # Collected, not raised: one run lists every failure (and Hypothesis does not shrink).
            failures.append(f"{label} → {response.status_code}: {exc}\n  {case.as_curl_command()}")

    for operation in operations:
        headers = [header for header in operation.headers if header.name.lower() != "authorization"]
        has_input = any((operation.path_parameters, operation.query, headers, operation.body))
        # Without parameters or a body there is no invalid input to send (Hypothesis would
        # search for seconds before giving up); the token header is always ours.
        modes = (GenerationMode.POSITIVE, GenerationMode.NEGATIVE) if has_input else (GenerationMode.POSITIVE,)
        for mode in modes:
            label = f"{operation.label} [{mode.value}]"
            started = time.monotonic()
            try:
                _run_examples(_strategy(operation, mode, world), lambda case, label=label: check(label, case))
            except Unsatisfiable:
                # An operation with no parameters and no body has no invalid input to send.
                if mode is GenerationMode.POSITIVE:
                    failures.append(f"{label}: no input could be generated")
            elapsed = time.monotonic() - started
            timings[label] = elapsed
            assert elapsed < OPERATION_BUDGET_SECONDS, f"{label} took {elapsed:.1f} s"
    events.flush()

    total = sum(cases.values())
    record_property("fuzz_cases", total)
    slowest = sorted(timings.items(), key=lambda item: -item[1])[:3]
    print(f"\nschemathesis: {total} cases over {len(operations)} operations in {sum(timings.values()):.1f} s;")
    print(f"statuses {sorted(statuses.items())}; slowest {[(label, round(t, 1)) for label, t in slowest]}")
    assert total >= len(operations) * EXAMPLES, cases
    assert not failures, f"{len(failures)} failures of {total} cases:\n" + "\n".join(failures)
