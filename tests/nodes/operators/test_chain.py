"""Chains: streaming, counters, drop samples, reports, merging shard reports, stages."""

import json

import pytest

from nodes.operators.base import OperatorConfigError
from nodes.operators.chain import Chain

STEPS = [
    {"name": "normalize_whitespace"},
    {"name": "text_length", "config": {"min_length": 5}},
    {"name": "exact_dedup"},
]


def records(*texts):
    return [{"id": i, "text": text} for i, text in enumerate(texts)]


def test_chain_streams_counts_and_samples_drops():
    chain = Chain.from_steps(STEPS, samples_per_reason=2, sample_chars=8)
    batches = [records(" hello  world ", "hi", "x" * 50), records("hello world", "ab", "cd", "ef", 7)]
    out = [r["text"] for kept in chain.process(batches) for r in kept]
    assert out == ["hello world", "x" * 50]

    report = json.loads(json.dumps(chain.report()))  # JSON-serialisable
    assert report["records_in"] == 8 and report["records_out"] == 2
    whitespace, length, dedup = report["steps"]
    assert whitespace["dropped"] == {"text_not_string": 1}
    assert (length["in"], length["kept"], length["dropped"]) == (7, 3, {"too_short": 4})
    assert [s["text"] for s in length["samples"]["too_short"]] == ["hi", "ab"]  # at most 2 kept
    assert dedup["dropped"] == {"duplicate": 1}
    assert dedup["samples"]["duplicate"][0] == {"id": 0, "text": "hello wo…"}  # cut to sample_chars
    assert all(step["seconds"] >= 0 for step in report["steps"])


def test_non_object_records_are_rejected_not_crashing():
    chain = Chain.from_steps(STEPS)
    assert chain.process_batch(["text", None, {"text": "valid text"}]) == [{"text": "valid text"}]
    assert chain.report()["rejected"] == {"not_an_object": 2}


def test_reasons_per_step_are_bounded():
    from nodes.operators.chain import MAX_REASONS, OTHER_REASONS

    class Chatty:
        name, kind, version = "chatty", "filter", "1"

        def process_batch(self, batch):
            return [], [(record, f"reason {record['i']}") for record in batch]

    chain = Chain([Chatty()])
    chain.process_batch([{"i": i} for i in range(MAX_REASONS + 50)])
    dropped = chain.report()["steps"][0]["dropped"]
    assert len(dropped) == MAX_REASONS + 1 and dropped[OTHER_REASONS] == 50


@pytest.mark.parametrize(
    ("steps", "field"),
    [
        ([{"name": "text_length"}, {"name": "nope"}], "operators[1].name"),
        ([{"name": "text_length", "config": {"min_length": "5"}}], "operators[0].config.min_length"),
        ([{"config": {}}], "operators[0].name"),
        ([{"name": "text_length", "conf": {}}], "operators[0].conf"),
        (["text_length"], "operators[0]"),
        ({"name": "text_length"}, "operators"),
        ([{}, {}, {"name": "keywords", "config": {"words": []}}], "operators[0].name"),
    ],
)
def test_bad_steps_name_the_field(steps, field):
    with pytest.raises(OperatorConfigError) as error:
        Chain.from_steps(steps)
    assert error.value.field == field


def test_shard_reports_merge_into_the_single_run_report():
    texts = [f"record {i % 7} " * 3 for i in range(40)] + ["tiny"] * 5
    whole = Chain.from_steps(STEPS)
    whole.process_batch(records(*texts))
    # Two shards routed by the dedup key: the same kept count and counters as one run.
    head = Chain.from_steps(STEPS).stages()
    assert [[op.name for op in stage.operators] for stage in head] == [
        ["normalize_whitespace", "text_length"],
        ["exact_dedup"],
    ]
    stage0_reports, partitions = [], {0: [], 1: []}
    for shard in (texts[:20], texts[20:]):
        first, second = Chain.from_steps(STEPS).stages()
        for record in first.process_batch(records(*shard)):
            partitions[second.partition(record, 2)].append(record)
        stage0_reports.append(first.report())
    stage1_reports = []
    for part in partitions.values():
        _, second = Chain.from_steps(STEPS).stages()
        second.process_batch(part)
        stage1_reports.append(second.report())
    joined = Chain.join_reports([Chain.merge_reports(stage0_reports), Chain.merge_reports(stage1_reports)])

    expected = whole.report()
    assert joined["records_out"] == expected["records_out"] == 7
    for got, want in zip(joined["steps"], expected["steps"], strict=True):
        assert (got["name"], got["in"], got["kept"], got["dropped"]) == (
            want["name"],
            want["in"],
            want["kept"],
            want["dropped"],
        )
    assert sum(len(s) for s in joined["steps"][1]["samples"].values()) <= joined["samples_per_reason"]


def test_merge_refuses_reports_of_different_chains():
    a, b = Chain.from_steps(STEPS), Chain.from_steps(STEPS[:2])
    with pytest.raises(ValueError, match="different chains"):
        Chain.merge_reports([a.report(), b.report()])


def test_metrics_are_reported_and_merged():
    reports = []
    for text in ("a@b.co and c@d.org", "e@f.net"):
        chain = Chain.from_steps([{"name": "mask_pii", "config": {"kinds": ["email"]}}])
        chain.process_batch(records(text))
        reports.append(chain.report())
    assert Chain.merge_reports(reports)["steps"][0]["metrics"] == {"email": 3}
