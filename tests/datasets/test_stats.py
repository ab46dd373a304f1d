"""Streaming statistics: exact values on small data, bounded memory on many values."""

from datasets.stats import LENGTH_BIN_EDGES, TopValues, compute_stats


def test_field_statistics():
    batches = [
        [{"text": "", "n": 1, "flag": True}, {"text": "abc", "n": 2.5}],
        [{"text": "x" * 20, "n": None, "flag": False}, {"text": "abc", "extra": [1]}],
    ]
    stats = compute_stats(batches)
    assert stats["count"] == 4
    fields = {field["name"]: field for field in stats["fields"]}
    text = fields["text"]
    assert text["types"] == {"string": 4}
    assert text["length"]["min"] == 0 and text["length"]["max"] == 20 and text["length"]["mean"] == 6.5
    histogram = {(b["from"], b["to"]): b["count"] for b in text["length"]["histogram"]}
    assert histogram[(0, 1)] == 1 and histogram[(1, 16)] == 2 and histogram[(16, 32)] == 1
    assert text["top_values"][0] == {"value": "abc", "count": 2}
    assert text["top_values_exact"] is True
    assert fields["n"]["types"] == {"integer": 1, "null": 1, "number": 1}
    assert fields["n"]["numeric"] == {"min": 1, "max": 2.5, "mean": 1.75}
    assert fields["flag"]["present"] == 2 and fields["flag"]["missing"] == 2
    assert fields["extra"]["types"] == {"array": 1}
    assert stats["text_field"] == "text"


def test_the_last_bin_is_open_ended():
    stats = compute_stats([[{"body": "y" * 100_000}]])
    last = stats["fields"][0]["length"]["histogram"][-1]
    assert last == {"from": LENGTH_BIN_EDGES[-1], "to": None, "count": 1}
    assert stats["text_field"] == "body"


def test_top_values_stay_bounded_and_find_the_heavy_hitters():
    top = TopValues(capacity=50)
    for i in range(20_000):
        top.add("common" if i % 3 == 0 else f"rare-{i}")
    assert len(top.counts) <= 50
    assert top.exact is False
    assert top.top(1)[0]["value"] == "common"


def test_no_string_fields_means_no_text_field():
    assert compute_stats([[{"n": 1}]])["text_field"] is None
    assert compute_stats([])["count"] == 0
