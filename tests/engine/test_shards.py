"""Sharded data nodes: one node's work split over parallel tasks on real workers, merged into
one output, with retries, cancel and lost workers handled per shard."""

from datetime import timedelta
import io
import random

from django.utils import timezone
import pytest

from datasets import records, services
from datasets.models import Dataset
from nodes.operators.chain import Chain
from pipelines.engine import sweeper
from pipelines.engine.runs import cancel, start_run
from pipelines.engine.shards import task_id
from pipelines.models import NodeRun, NodeRunLog, NodeShard, Run
from pipelines.tasks import execute_shard
from tests.engine.conftest import all_records, make_dataset, node, node_states, wait_for_run
from tests.factories import create_pipeline, edge
from tests.waiting import wait_until

pytestmark = pytest.mark.slow


def copy_pipeline(owner, dataset, settings=None, **config):
    return create_pipeline(
        owner,
        {
            "name": "sharded copy",
            "nodes": [
                node("read", "input_dataset", dataset=dataset.name),
                node("copy", "test_sharded_copy", settings=settings, **config),
                node("write", "output_dataset", dataset=f"{dataset.name}-copy"),
            ],
            "edges": [edge("read", "copy"), edge("copy", "write")],
        },
    )


def shard_rows(run, key="copy"):
    return list(NodeShard.objects.filter(node_run__run=run, node_run__node_key=key).order_by("stage", "index"))


def log_text(run, key):
    return "\n".join(
        NodeRunLog.objects.filter(node_run__run=run, node_run__node_key=key).values_list("message", flat=True)
    )


# --- slices of a record store (no workers) --------------------------------------------


def written(prefix, rows, part_records):
    with records.RecordWriter(prefix, part_records=part_records) as writer:
        writer.write_batch(rows)
        return writer.close()


@pytest.mark.parametrize("shards", [1, 2, 3, 4, 7, 50, 80])
def test_split_covers_every_record_once_in_order(shards):
    rows = [{"id": i, "text": f"record {i}"} for i in range(50)]
    first = written("tests/split/a", rows[:23], part_records=7)
    second = written("tests/split/b", rows[23:], part_records=10)
    slices = records.split([first, second], shards)
    assert len(slices) == min(shards, 50)
    counts = [piece["count"] for piece in slices]
    assert max(counts) - min(counts) <= 1  # nearly equal
    assert [row for piece in slices for row in all_records(piece)] == rows
    assert [len(all_records(piece)) for piece in slices] == counts
    assert [piece["offset"] for piece in slices] == [sum(counts[:i]) for i in range(len(counts))]


def test_concat_is_one_artifact_without_copying_and_verifies_its_parts():
    first = written("tests/concat/a", [{"id": 1, "text": "x"}], part_records=10)
    second = written("tests/concat/b", [{"id": 2, "score": 0.5}, {"id": 3, "score": None}], part_records=1)
    merged = records.concat([first, second])
    assert merged["count"] == 3
    assert [row["id"] for row in all_records(merged)] == [1, 2, 3]
    assert {field["name"]: field["types"] for field in merged["fields"]} == {
        "id": ["integer"],
        "text": ["string"],
        "score": ["null", "number"],
    }
    assert records.verify(merged)
    part = merged["parts"][1]["name"]
    records.default_storage.delete(part)
    records.default_storage.save(part, io.BytesIO(b'{"id": 99}\n'))
    assert not records.verify(merged)


# --- real runs ------------------------------------------------------------------------


def test_a_sharded_node_runs_each_slice_as_a_task_and_merges_one_output(engine, alice):
    rows = [{"id": i, "text": f"record number {i}"} for i in range(100)]
    dataset = make_dataset(alice, "numbers", rows)
    run = wait_for_run(start_run(copy_pipeline(alice, dataset, shards=4), user=alice), timeout=60)
    assert run.state == "succeeded", run.error
    copy = NodeRun.objects.get(run=run, node_key="copy")
    assert (copy.records_in, copy.records_out, copy.progress) == (100, 100, 1.0)
    shards = shard_rows(run)
    assert [(s.stage, s.index, s.of, s.state) for s in shards] == [(0, i, 4, "succeeded") for i in range(4)]
    assert [s.records_in for s in shards] == [25, 25, 25, 25]

    output = copy.output
    assert output["count"] == 100
    assert output["copies"] == 100  # the type's counters are summed over the shards
    assert output["tag"] == "same"
    copied = all_records(output["manifest"])
    assert sorted(row["id"] for row in copied) == list(range(100))  # every record exactly once
    assert {row["shard"] for row in copied} == {0, 1, 2, 3}
    assert all(row["shard"] == row["id"] // 25 for row in copied)  # contiguous slices, in order

    written_version = services.latest_version(Dataset.objects.get(owner=alice, name="numbers-copy"))
    assert written_version.record_count == 100
    assert "split 100 records into 4 shards" in log_text(run, "copy")
    assert "merged 4 shards: 100 records" in log_text(run, "copy")


def test_auto_runs_a_small_input_in_one_piece(engine, alice):
    dataset = make_dataset(alice, "few", [{"id": i} for i in range(10)])
    run = wait_for_run(start_run(copy_pipeline(alice, dataset, shards="auto"), user=alice), timeout=30)
    assert run.state == "succeeded", run.error
    assert shard_rows(run) == []
    assert NodeRun.objects.get(run=run, node_key="copy").output["count"] == 10


def corpus(size=600, seed=3):
    """Texts with exact duplicates (after whitespace normalization), near duplicates and short ones."""
    rng = random.Random(seed)
    words = [f"w{n}" for n in range(400)]
    rows = []
    for number in range(size):
        roll = rng.random()
        if rows and roll < 0.2:  # an exact duplicate of an earlier text, with other spacing
            text = "  ".join(rng.choice(rows)["text"].split())
        elif rows and roll < 0.3:  # a near duplicate: one word changed
            base = rng.choice(rows)["text"].split()
            base[rng.randrange(len(base))] = "changed"
            text = " ".join(base)
        elif roll < 0.35:
            text = "tiny"
        else:
            text = " ".join(rng.choice(words) for _ in range(30))
        rows.append({"id": number, "text": text})
    return rows


CHAIN = [
    {"name": "normalize_whitespace"},
    {"name": "text_length", "config": {"min_length": 10}},
    {"name": "exact_dedup"},
    {"name": "word_count", "config": {"min_words": 5}},
]


def cleaning_pipeline(owner, dataset, operators, shards):
    return create_pipeline(
        owner,
        {
            "name": f"clean {shards}",
            "nodes": [
                node("read", "input_dataset", dataset=dataset.name),
                node("clean", "data_cleaning", operators=operators, shards=shards),
            ],
            "edges": [edge("read", "clean")],
        },
    )


def step_counts(report):
    return [(step["name"], step["in"], step["kept"], step["dropped"]) for step in report["steps"]]


def test_sharded_cleaning_routes_records_by_key_and_keeps_what_one_piece_keeps(engine, alice):
    dataset = make_dataset(alice, "corpus", corpus())
    whole = wait_for_run(start_run(cleaning_pipeline(alice, dataset, CHAIN, 1), user=alice), timeout=60)
    sharded = wait_for_run(start_run(cleaning_pipeline(alice, dataset, CHAIN, 3), user=alice), timeout=60)
    assert (whole.state, sharded.state) == ("succeeded", "succeeded"), (whole.error, sharded.error)

    one = NodeRun.objects.get(run=whole, node_key="clean").output
    many = NodeRun.objects.get(run=sharded, node_key="clean").output
    assert shard_rows(whole, "clean") == []
    # Stage 1: mappers and filters on slices; stage 2: the deduplicator and what follows, by key.
    assert [(s.stage, s.index, s.state) for s in shard_rows(sharded, "clean")] == [
        (stage, index, "succeeded") for stage in (0, 1) for index in range(3)
    ]
    assert 0 < many["count"] == one["count"] < 600
    assert sorted(r["id"] for r in all_records(many["manifest"])) == sorted(
        r["id"] for r in all_records(one["manifest"])
    )
    assert step_counts(many["operators"]) == step_counts(one["operators"])
    assert many["operators"]["records_in"] == 600
    assert many["operators"]["records_out"] == many["count"]
    dropped = many["operators"]["steps"][2]["samples"]["duplicate"]
    assert dropped and len(dropped) <= many["operators"]["samples_per_reason"]
    clean = NodeRun.objects.get(run=sharded, node_key="clean")
    assert (clean.records_in, clean.records_out) == (600, many["count"])
    # The partitions between the stages are deleted once merged; the output's parts remain.
    assert records.verify(many["manifest"])


def test_near_dedup_runs_as_one_shard_after_keyed_stages(engine, alice):
    dataset = make_dataset(alice, "near", corpus(300, seed=5))
    operators = [*CHAIN[:3], {"name": "near_dedup", "config": {"threshold": 0.7}}]
    whole = wait_for_run(start_run(cleaning_pipeline(alice, dataset, operators, 1), user=alice), timeout=60)
    sharded = wait_for_run(start_run(cleaning_pipeline(alice, dataset, operators, 2), user=alice), timeout=60)
    assert (whole.state, sharded.state) == ("succeeded", "succeeded"), (whole.error, sharded.error)
    stages = [(s.stage, s.of) for s in shard_rows(sharded, "clean")]
    assert stages == [(0, 2), (0, 2), (1, 2), (1, 2), (2, 1)]
    one = NodeRun.objects.get(run=whole, node_key="clean").output
    many = NodeRun.objects.get(run=sharded, node_key="clean").output
    near_one, near_many = one["operators"]["steps"][3], many["operators"]["steps"][3]
    assert near_many["in"] == near_one["in"]
    assert near_many["dropped"].get("near_duplicate", 0) > 0
    # Which of a group of near duplicates survives depends on the order records arrive in (a
    # sharded run groups them by exact key first), so counts may differ a little; what must
    # hold is that no near duplicates are left, as with one piece.
    assert abs(many["count"] - one["count"]) <= one["count"] // 50
    for output in (one, many):
        again = Chain.from_steps([operators[3]])
        list(again.process(records.iter_records(output["manifest"])))
        assert again.records_out == output["count"]


def test_a_failing_shard_is_retried_alone(engine, alice):
    dataset = make_dataset(alice, "retry", [{"id": i} for i in range(40)])
    pipeline = copy_pipeline(
        alice, dataset, settings={"retries": 2, "retry_backoff_seconds": 0.2}, shards=4, fail_on_id=17, fail_times=1
    )
    run = wait_for_run(start_run(pipeline, user=alice), timeout=60)
    assert run.state == "succeeded", run.error
    attempts = {s.index: s.attempt for s in shard_rows(run)}
    assert attempts == {0: 1, 1: 2, 2: 1, 3: 1}  # record 17 is in the second slice
    copied = all_records(NodeRun.objects.get(run=run, node_key="copy").output["manifest"])
    assert sorted(row["id"] for row in copied) == list(range(40))
    assert "shard 2/4: attempt 1 failed: planned failure on record 17" in log_text(run, "copy")


def test_a_shard_message_delivered_before_its_retry_is_due_does_not_start_it_early(engine, processes, alice):
    """As for node runs (test_control.py): the worker holding the shard's delayed retry dies
    with it, and an early redelivery is sent again for the time the retry is due."""
    dataset = make_dataset(alice, "early", [{"id": i} for i in range(40)])
    pipeline = copy_pipeline(
        alice, dataset, settings={"retries": 1, "retry_backoff_seconds": 10}, shards=4, fail_on_id=17, fail_times=1
    )
    log_start = len(processes.worker.output())
    run = start_run(pipeline, user=alice)
    wait_until(lambda: any(s.attempt == 2 for s in shard_rows(run)), what="shard 2's first attempt to fail")
    retried = next(s for s in shard_rows(run) if s.attempt == 2)
    received = f"[{task_id(retried.pk)}] received"
    wait_until(lambda: processes.worker.output()[log_start:].count(received) == 2, what="the retry's delayed message")
    wait_until(lambda: all(s.state == "succeeded" for s in shard_rows(run) if s.pk != retried.pk), what="the others")
    processes.kill_worker()
    processes.start_worker()  # no beat: no sweeper re-sends the lost message
    execute_shard.apply_async((retried.pk,))  # a redelivery
    assert timezone.now() < retried.ready_at - timedelta(seconds=2)  # sent early

    run = wait_for_run(run, timeout=60)
    assert run.state == "succeeded", run.error
    retried.refresh_from_db()
    assert retried.attempt == 2 and retried.state == "succeeded"
    assert retried.started_at >= retried.ready_at - timedelta(milliseconds=50), (retried.started_at, retried.ready_at)
    copied = all_records(NodeRun.objects.get(run=run, node_key="copy").output["manifest"])
    assert sorted(row["id"] for row in copied) == list(range(40))


def test_a_shard_out_of_retries_fails_the_node_and_stops_the_others(engine, alice):
    dataset = make_dataset(alice, "doomed", [{"id": i} for i in range(40)])
    pipeline = copy_pipeline(
        alice, dataset, settings={"retries": 1, "retry_backoff_seconds": 0.1}, shards=4, fail_on_id=3
    )
    run = wait_for_run(start_run(pipeline, user=alice), timeout=60)
    assert run.state == "failed"
    assert "copy: shard 1/4: planned failure on record 3" in run.error
    assert node_states(run) == {"read": "succeeded", "copy": "failed", "write": "skipped"}
    assert all(s.state in ("succeeded", "cancelled", "failed") for s in shard_rows(run))
    assert shard_rows(run)[0].state == "failed"
    assert not Dataset.objects.filter(owner=alice, name="doomed-copy").exists()


def test_cancel_stops_every_shard(engine, alice):
    dataset = make_dataset(alice, "slow", [{"id": i} for i in range(20)])
    run = start_run(copy_pipeline(alice, dataset, shards=4, sleep=20), user=alice)
    wait_until(lambda: NodeShard.objects.filter(node_run__run=run, state="running").count() == 2, what="2 shards")
    assert NodeRun.objects.get(run=run, node_key="copy").state == "waiting"  # no worker held by the node itself
    cancel(run)
    wait_until(
        lambda: not NodeShard.objects.filter(node_run__run=run, state__in=["pending", "running"]).exists(),
        timeout=10,
        what="shards cancelled",
    )
    run.refresh_from_db()
    assert run.state == "cancelled"
    assert {s.state for s in shard_rows(run)} == {"cancelled"}
    assert NodeRun.objects.get(run=run, node_key="copy").state == "cancelled"


def test_kill_9_of_a_worker_mid_shard_reruns_only_the_lost_shards(engine, alice, processes):
    dataset = make_dataset(alice, "chaos", [{"id": i} for i in range(30)])
    run = start_run(copy_pipeline(alice, dataset, shards=3, sleep=3), user=alice)
    wait_until(lambda: NodeShard.objects.filter(node_run__run=run, state="running").count() == 2, what="2 shards")
    processes.kill_worker()
    processes.start_worker()
    processes.start_beat()
    run = wait_for_run(run, timeout=60)
    assert run.state == "succeeded", run.error
    shards = shard_rows(run)
    assert sorted(s.attempt for s in shards) == [1, 2, 2]  # the queued shard was never lost
    copied = all_records(NodeRun.objects.get(run=run, node_key="copy").output["manifest"])
    assert sorted(row["id"] for row in copied) == list(range(30))  # each record exactly once
    assert "worker lost" in log_text(run, "copy")


def test_the_sweeper_finishes_a_merge_whose_worker_died(engine, alice):
    make_dataset(alice, "merge", [{"id": i} for i in range(12)])
    pipeline = create_pipeline(
        alice,
        {
            "name": "merge",
            "nodes": [node("read", "input_dataset", dataset="merge"), node("copy", "test_sharded_copy", shards=3)],
            "edges": [edge("read", "copy")],
        },
    )
    run = wait_for_run(start_run(pipeline, user=alice), timeout=30)
    assert run.state == "succeeded", run.error
    # The state a worker leaves when it dies after claiming the merge, before finishing it:
    # every shard done long ago, the node still waiting, the run still running.
    copy = NodeRun.objects.get(run=run, node_key="copy")
    long_ago = timezone.now() - timedelta(hours=1)
    NodeShard.objects.filter(node_run=copy).update(finished_at=long_ago)
    NodeRun.objects.filter(pk=copy.pk).update(state="waiting", shard_stage=1, output=None, finished_at=None)
    Run.objects.filter(pk=run.pk).update(state="running", finished_at=None)

    counts = sweeper.sweep()

    assert counts["shard_merges_resumed"] == 1
    run.refresh_from_db()
    copy.refresh_from_db()
    assert (run.state, copy.state, copy.output["count"]) == ("succeeded", "succeeded", 12)
    assert sorted(row["id"] for row in all_records(copy.output["manifest"])) == list(range(12))
    assert "resuming the merge of its shards" in log_text(run, "copy")
    assert sweeper.sweep()["shard_merges_resumed"] == 0


def test_sharded_synthesis_and_annotation_number_and_count_records_across_shards(engine, alice):
    make_dataset(alice, "items", [{"id": i, "text": "good" if i % 3 else "bad"} for i in range(90)])
    document = {
        "name": "synthesize and label",
        "nodes": [
            node("read", "input_dataset", dataset="items"),
            node("make", "data_synthesis", prompt_template="item {{ index }}: {{ record.text }}", shards=3),
            node(
                "label",
                "data_annotation",
                labels=["good", "bad"],
                rules={"bad": ["bad"]},
                default_label="good",
                shards=2,
            ),
        ],
        "edges": [edge("read", "make"), edge("make", "label")],
    }
    run = wait_for_run(start_run(create_pipeline(alice, document), user=alice), timeout=60)
    assert run.state == "succeeded", run.error
    assert [(s.index, s.of) for s in shard_rows(run, "make")] == [(0, 3), (1, 3), (2, 3)]
    made = all_records(NodeRun.objects.get(run=run, node_key="make").output["manifest"])
    # `index` numbers the node's input, not each shard's slice.
    assert [row["text"] for row in made] == [f"item {i}: {'good' if i % 3 else 'bad'}" for i in range(90)]
    label = NodeRun.objects.get(run=run, node_key="label")
    assert len(shard_rows(run, "label")) == 2
    assert label.output["label_counts"] == {"good": 60, "bad": 30}  # summed over the shards
    assert label.output["count"] == 90
