"""The record store: parts in storage, manifest, streaming reads, abort."""

import hashlib

from django.core.files.storage import default_storage
import pytest

from datasets import records
from tests.datasets.conftest import stored_files


def rows(n, start=0):
    return [{"id": i, "text": f"record {i}", "score": i / 2 if i % 3 else None} for i in range(start, start + n)]


def test_writer_splits_parts_and_describes_them(media_root):
    writer = records.RecordWriter("artifacts/run-1/clean", part_records=4)
    writer.write_batch(rows(6))
    writer.write_batch(rows(4, start=6))
    manifest = writer.close()

    assert manifest["count"] == 10
    assert [part["count"] for part in manifest["parts"]] == [4, 4, 2]
    assert manifest["fields"] == [
        {"name": "id", "types": ["integer"]},
        {"name": "text", "types": ["string"]},
        {"name": "score", "types": ["null", "number"]},
    ]
    assert manifest["samples"] == rows(records.SAMPLE_RECORDS)
    stored = b"".join((media_root / part["name"]).read_bytes() for part in manifest["parts"])
    assert manifest["bytes"] == len(stored) == sum(part["bytes"] for part in manifest["parts"])
    assert manifest["checksum"] == "sha256:" + hashlib.sha256(stored).hexdigest()
    assert stored_files(media_root) == [f"artifacts/run-1/clean/part-0000{i}.jsonl" for i in range(3)]
    assert records.verify(manifest)


def test_reading_streams_bounded_batches_across_parts(media_root):
    with records.RecordWriter("p", part_records=7) as writer:
        writer.write_batch(rows(50))
    manifest = writer.manifest

    batches = list(records.iter_records(manifest, batch_size=8))
    assert all(len(batch) <= 8 for batch in batches)
    assert [len(batch) for batch in batches] == [8] * 6 + [2]
    assert [record for batch in batches for record in batch] == rows(50)
    assert next(records.iter_records(manifest["parts"], 100, fields=["id"]))[:2] == [{"id": 0}, {"id": 1}]
    # Names alone are enough to read (what a message between nodes may carry).
    assert sum(len(b) for b in records.iter_records([part["name"] for part in manifest["parts"]])) == 50


def test_read_slice_skips_whole_parts(media_root):
    with records.RecordWriter("p", part_records=5) as writer:
        writer.write_batch(rows(23))
    manifest = writer.manifest

    assert records.read_slice(manifest, 0, 3) == rows(3)
    assert records.read_slice(manifest, 9, 4) == rows(4, start=9)  # crosses a part boundary
    assert records.read_slice(manifest, 20, 10, fields=["id"]) == [{"id": 20}, {"id": 21}, {"id": 22}]
    assert records.read_slice(manifest, 23, 10) == []
    # Without counts in the manifest the slice is still right (lines are skipped unparsed).
    names = {"parts": [part["name"] for part in manifest["parts"]]}
    assert records.read_slice(names, 9, 4) == rows(4, start=9)


def test_raw_export_is_the_stored_bytes(media_root):
    with records.RecordWriter("p", part_records=2) as writer:
        writer.write_batch(rows(5))
    raw = b"".join(records.iter_raw(writer.manifest))
    assert raw.count(b"\n") == 5
    assert "sha256:" + hashlib.sha256(raw).hexdigest() == writer.manifest["checksum"]


def test_abort_deletes_every_part_written(media_root):
    writer = records.RecordWriter("p", part_records=2)
    writer.write_batch(rows(5))
    assert len(stored_files(media_root)) == 2  # two full parts were shipped already
    writer.abort()
    assert stored_files(media_root) == []


def test_an_exception_in_the_with_block_aborts(media_root):
    with pytest.raises(RuntimeError), records.RecordWriter("p", part_records=1) as writer:
        writer.write_batch(rows(3))
        raise RuntimeError("upstream failed")
    assert stored_files(media_root) == []
    assert writer.manifest is None


def test_non_objects_and_unstorable_values_are_refused(media_root):
    writer = records.RecordWriter("p")
    with pytest.raises(TypeError, match="JSON object"):
        writer.write([1, 2])
    with pytest.raises(TypeError):
        writer.write({"x": object()})
    writer.abort()


def test_samples_cut_long_strings(media_root):
    with records.RecordWriter("p") as writer:
        writer.write({"text": "x" * 5000})
    sample = writer.manifest["samples"][0]["text"]
    assert len(sample) == records.SAMPLE_TEXT_CHARS + 1 and sample.endswith("…")


def test_empty_writer_has_no_parts(media_root):
    with records.RecordWriter("p") as writer:
        pass
    assert writer.manifest["count"] == 0 and writer.manifest["parts"] == []
    assert list(records.iter_records(writer.manifest)) == []


def test_missing_part_is_a_store_error(media_root):
    with records.RecordWriter("p") as writer:
        writer.write({"a": 1})
    default_storage.delete(writer.manifest["parts"][0]["name"])
    with pytest.raises(records.RecordStoreError, match="missing"):
        list(records.iter_records(writer.manifest))


def test_parts_bigger_than_the_memory_spool_are_moved_into_place_whole(media_root):
    # ~3 MB per part: each spills from memory to a spool file next to the parts, which the
    # storage then renames into place; nothing of the spool may be left behind.
    rows = [{"id": i, "text": f"{i:08d} " + "x" * 1000} for i in range(6000)]
    with records.RecordWriter("big/v1", part_records=3000) as writer:
        for start in range(0, len(rows), 500):
            writer.write_batch(rows[start : start + 500])
        manifest = writer.close()
    assert [part["count"] for part in manifest["parts"]] == [3000, 3000]
    assert all(part["bytes"] > 2 * 1024 * 1024 for part in manifest["parts"])
    assert stored_files(media_root) == ["big/v1/part-00000.jsonl", "big/v1/part-00001.jsonl"]
    assert [row for batch in records.iter_records(manifest) for row in batch] == rows
    assert records.verify(manifest)


def test_an_aborted_big_part_leaves_no_spool_file(media_root):
    writer = records.RecordWriter("big/v2", part_records=10_000)
    writer.write_batch([{"text": "y" * 1000} for _ in range(2000)])  # spilled, not yet shipped
    writer.abort()
    assert stored_files(media_root) == []
