import io
import time

import orjson

from datasets import records
from datasets import services as dataset_services
from datasets.models import Dataset
from pipelines.engine.states import RunState
from pipelines.models import NodeRun, Run


def wait_for_run(run: Run, timeout: float = 30) -> Run:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        run.refresh_from_db()
        if run.state in RunState.FINISHED:
            return run
        time.sleep(0.05)
    states = dict(NodeRun.objects.filter(run=run).values_list("node_key", "state"))
    raise AssertionError(f"run {run.pk} still {run.state} after {timeout} s: {states}")


def node_states(run: Run, iteration: str = "") -> dict[str, str]:
    return dict(NodeRun.objects.filter(run=run, iteration=iteration).values_list("node_key", "state"))


def outputs(run: Run, iteration: str = "") -> dict[str, dict]:
    return dict(NodeRun.objects.filter(run=run, iteration=iteration).values_list("node_key", "output"))


def node(key: str, type_: str, settings: dict | None = None, **config) -> dict:
    """A document's node with exactly this config (tests.factories.node fills in defaults)."""
    return {"key": key, "type": type_, "config": config, **({"settings": settings} if settings else {})}


def make_dataset(owner, name: str, rows: list[dict]) -> Dataset:
    """A dataset with one version holding these records."""
    dataset = dataset_services.create_dataset(owner=owner, name=name)
    data = b"".join(orjson.dumps(row) + b"\n" for row in rows)
    dataset_services.import_version(dataset, dataset_services.Source.upload(io.BytesIO(data), f"{name}.jsonl"))
    return dataset


def all_records(manifest) -> list[dict]:
    """Every record a version (or a node's output) holds, in order."""
    return [record for batch in records.iter_records(manifest) for record in batch]
