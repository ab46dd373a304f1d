"""The seed example, end to end on a real worker: Input Dataset → Data Cleaning → Condition on
a quality metric (the share of records that survived cleaning) → Data Annotation or Data
Synthesis → Output Dataset. Both branches, each with the records a user would check."""

import pytest

from datasets import services
from datasets.models import Dataset
from pipelines.engine.runs import start_run
from tests.engine.conftest import all_records, make_dataset, node_states, outputs, wait_for_run
from tests.factories import create_pipeline, example_document

pytestmark = pytest.mark.slow

GOOD = [
    "<p>How do tides work, and why are there two of them every day?</p>",
    "<p>Explain how a bicycle stays upright while it is moving forward.</p>",
    "<p>User: my plants keep dying. Assistant: how often do you water them?</p>",
    "<p>The library opens at nine and closes at six on weekdays, later on Fridays.</p>",
]
JUNK = ["<p>ok</p>", "<p>hi</p>", "<b>?</b>"]


def run_example(owner, name, texts):
    make_dataset(owner, name, [{"id": number, "text": text} for number, text in enumerate(texts)])
    run = start_run(create_pipeline(owner, example_document()), {"input_dataset": name}, user=owner)
    return wait_for_run(run, timeout=60)


def latest_records(owner, name):
    return all_records(services.latest_version(Dataset.objects.get(owner=owner, name=name)).manifest)


def test_mostly_good_data_is_labelled_and_scored(engine, alice):
    run = run_example(alice, "pages", GOOD + GOOD[:1] + JUNK[:1])  # a duplicate and one junk page
    assert run.state == "succeeded", run.error
    assert node_states(run) == {
        "input": "succeeded",
        "clean": "succeeded",
        "enough": "succeeded",
        "annotate": "succeeded",
        "save_annotated": "succeeded",
        "synthesize": "skipped",
        "save_synthesized": "skipped",
    }
    out = outputs(run)
    assert (out["clean"]["operators"]["records_in"], out["clean"]["count"]) == (6, 4)
    assert out["enough"]["result"] is True
    labelled = latest_records(alice, "pages-annotated")
    assert [record["label"] for record in labelled] == ["question", "instruction", "dialogue", "other"]
    assert all(0 < record["quality"] <= 1 for record in labelled)
    assert out["annotate"]["label_counts"] == {"dialogue": 1, "question": 1, "instruction": 1, "other": 1}
    assert not Dataset.objects.filter(owner=alice, name="pages-synthesized").exists()


def test_mostly_junk_data_is_synthesized_from_what_survives(engine, alice):
    run = run_example(alice, "scraps", JUNK + GOOD[3:])
    assert run.state == "succeeded", run.error
    states = node_states(run)
    assert (states["annotate"], states["synthesize"], states["save_synthesized"]) == (
        "skipped",
        "succeeded",
        "succeeded",
    )
    assert outputs(run)["enough"]["result"] is False
    synthesized = latest_records(alice, "scraps-synthesized")
    assert synthesized == [
        {
            "id": 3,
            "text": "The library opens at nine and closes at six on weekdays, later on Fridays.",
            "question": "Write a question a user might ask about: "
            "The library opens at nine and closes at six on weekdays, later on Fridays.",
        }
    ]
    assert not Dataset.objects.filter(owner=alice, name="scraps-annotated").exists()
