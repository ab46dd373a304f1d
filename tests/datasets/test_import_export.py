"""Import → export → import round-trips, folders, and bad input that names file and line."""

import io
import os

import pyarrow.parquet as pq
import pytest

from datasets import records, services
from datasets.errors import DatasetError, DatasetImportError
from datasets.models import Dataset, DatasetVersion, VersionImmutable
from tests.datasets import builders
from tests.datasets.conftest import stored_files

pytestmark = pytest.mark.django_db


@pytest.fixture
def dataset(alice):
    return services.create_dataset(owner=alice, name="corpus", description="web text", tags=["en"])


def upload(name: str, data: bytes) -> services.Source:
    return services.Source.upload(io.BytesIO(data), name)


def all_records(version) -> list[dict]:
    return [record for batch in records.iter_records(version.manifest) for record in batch]


def exported(version, fmt: str) -> bytes:
    return b"".join(services.export_version(version, fmt).chunks)


ROUND_TRIPS = [
    ("corpus.jsonl", builders.jsonl_bytes, "jsonl", builders.sample_records),
    ("corpus.json", builders.json_bytes, "jsonl", builders.sample_records),
    ("corpus.csv", builders.csv_bytes, "csv", lambda: builders.flat(builders.sample_records())),
    ("corpus.parquet", builders.parquet_bytes, "parquet", builders.sample_records),
]


@pytest.mark.parametrize(("name", "encode", "export_format", "make"), ROUND_TRIPS)
def test_each_format_round_trips(dataset, alice, name, encode, export_format, make):
    original = make()
    first = services.import_version(dataset, upload(name, encode(original)), user=alice)
    assert first.number == 1 and first.record_count == len(original)
    assert all_records(first) == original

    again = exported(first, export_format)
    second = services.import_version(dataset, upload(f"again.{export_format}", again), user=alice)
    assert second.number == 2
    assert all_records(second) == original
    assert second.manifest["checksum"] == first.manifest["checksum"]


def test_parquet_export_keeps_types_and_nested_values(dataset, alice):
    original = builders.sample_records()
    version = services.import_version(dataset, upload("c.jsonl", builders.jsonl_bytes(original)), user=alice)
    table = pq.read_table(io.BytesIO(exported(version, "parquet")))
    assert str(table.schema.field("id").type) == "int64"
    assert str(table.schema.field("ok").type) == "bool"
    assert str(table.schema.field("score").type) == "double"
    assert str(table.schema.field("meta").type).startswith("struct<")
    assert table.to_pylist() == original


def test_csv_export_writes_non_strings_as_json(dataset, alice):
    version = services.import_version(
        dataset, upload("c.jsonl", builders.jsonl_bytes([{"a": 1, "b": None, "c": [1, "x"], "d": "plain"}])), user=alice
    )
    assert exported(version, "csv") == b'a,b,c,d\n1,,"[1,""x""]",plain\n'


def test_a_multi_part_version_streams_in_bounded_batches(dataset, alice, media_root):
    original = builders.sample_records(45)
    version = services.import_version(
        dataset, upload("c.jsonl", builders.jsonl_bytes(original)), user=alice, part_records=10
    )
    assert [part["count"] for part in version.manifest["parts"]] == [10, 10, 10, 10, 5]
    assert len(stored_files(media_root)) == 5
    batches = list(records.iter_records(version.manifest, batch_size=7))
    assert max(len(batch) for batch in batches) == 7
    assert [record for batch in batches for record in batch] == original
    assert records.read_slice(version.manifest, 18, 4) == original[18:22]


def test_folder_of_text_files(dataset, alice, import_root):
    folder = import_root / "docs"
    (folder / "guide").mkdir(parents=True)
    (folder / "a.txt").write_text("plain text\n")
    (folder / "guide" / "b.md").write_text("# Title\n\nBody")
    (folder / "guide" / "c.html").write_text("<p>hello</p>")
    (folder / "skip.bin").write_bytes(b"\x00\x01")

    version = services.import_version(dataset, services.Source.server_path("docs"), user=alice)

    assert all_records(version) == [
        {"path": "a.txt", "text": "plain text\n"},
        {"path": "guide/b.md", "text": "# Title\n\nBody"},
        {"path": "guide/c.html", "text": "<p>hello</p>"},
    ]
    assert version.source == "path docs (folder)"


def test_server_file_by_relative_and_absolute_path(dataset, alice, import_root):
    (import_root / "sub").mkdir()
    target = import_root / "sub" / "data.jsonl"
    target.write_bytes(builders.jsonl_bytes(builders.sample_records(3)))
    assert services.import_version(dataset, services.Source.server_path("sub/data.jsonl")).record_count == 3
    assert services.import_version(dataset, services.Source.server_path(str(target))).record_count == 3


def test_explicit_format_wins_over_the_name(dataset, alice):
    version = services.import_version(dataset, upload("data.txt", b'{"a": 1}\n'), "jsonl", user=alice)
    assert all_records(version) == [{"a": 1}]
    with pytest.raises(DatasetError) as error:
        services.import_version(dataset, upload("data.txt", b'{"a": 1}\n'), user=alice)
    assert error.value.field == "format"
    with pytest.raises(DatasetError) as error:
        services.import_version(dataset, upload("data.txt", b""), "xml", user=alice)
    assert error.value.field == "format"


# -- bad input -----------------------------------------------------------------------
BAD_FILES = [
    ("bad.jsonl", b'{"a": 1}\n{"a": 2}\n{"a": \n{"a": 4}\n', 3, "not valid JSON"),
    ("bad.jsonl", b'{"a": 1}\n\n{"a": "caf\xe9"}\n', 3, "not valid UTF-8 (byte 0xe9"),
    ("bad.jsonl", b'{"a": 1}\n[1, 2]\n', 2, "must be a JSON object, not array"),
    ("bad.json", b'[\n  {"a": 1},\n  {"a": }\n]', 3, "not valid JSON"),
    ("bad.json", b'[\n  {"a": 1},\n  {"a": "\xff"}\n]', 3, "not valid UTF-8"),
    ("bad.json", b'[\n  {"a": 1},\n  {"a": 2}\n', 4, "not closed"),
    ("bad.csv", b"id,text,lang\n1,hello,en\n2,world\n", 3, "missing 'lang'"),
    ("bad.csv", b"id,text\n1,hello\n2,a,b\n", 3, "3 columns but the header has 2"),
    ("bad.csv", b'id,text\n1,"multi\nline"\n2,caf\xe9\n', 4, "not valid UTF-8"),
    ("bad.csv", b"id,id\n1,2\n", 1, "appears twice"),
    ("bad.parquet", b"PAR1 this is not parquet", None, "not a readable Parquet file"),
]


@pytest.mark.parametrize(("name", "data", "line", "message"), BAD_FILES)
def test_bad_input_names_file_and_line(dataset, alice, media_root, name, data, line, message):
    with pytest.raises(DatasetImportError) as error:
        services.import_version(dataset, upload(name, data), user=alice)
    assert error.value.file == name
    assert error.value.line == line
    assert message in error.value.message
    assert error.value.field == "file"
    assert error.value.message.startswith(f"{name}, line {line}:" if line else f"{name}:")
    assert not DatasetVersion.objects.exists()
    assert stored_files(media_root) == []


def test_failure_after_parts_were_shipped_leaves_nothing(dataset, alice, media_root):
    good = builders.jsonl_bytes(builders.sample_records(25))
    with pytest.raises(DatasetImportError) as error:
        services.import_version(dataset, upload("big.jsonl", good + b"{oops}\n"), user=alice, part_records=5)
    assert error.value.line == 26
    assert not DatasetVersion.objects.exists()
    assert stored_files(media_root) == []


def test_failure_creating_the_row_deletes_the_parts(dataset, alice, media_root):
    """The records are all written, then the row cannot be created: the parts go too."""

    def batches_while_the_dataset_is_deleted():
        yield builders.sample_records(7)
        Dataset.objects.filter(pk=dataset.pk).delete()  # another user deletes it meanwhile
        yield builders.sample_records(7)

    with pytest.raises(DatasetError) as error:
        services.write_version(dataset, batches_while_the_dataset_is_deleted(), user=alice, part_records=3)
    assert error.value.field == "dataset"
    assert not DatasetVersion.objects.exists()
    assert stored_files(media_root) == []


def test_bad_file_inside_a_folder_names_that_file(dataset, alice, import_root, media_root):
    folder = import_root / "docs"
    folder.mkdir()
    (folder / "a.txt").write_text("fine")
    (folder / "b.md").write_bytes(b"line one\nline two \xff\n")
    with pytest.raises(DatasetImportError) as error:
        services.import_version(dataset, services.Source.server_path("docs"), user=alice)
    assert error.value.file == "docs/b.md" and error.value.line == 2
    assert error.value.field == "path"
    assert stored_files(media_root) == []


# -- server paths stay inside the import roots ----------------------------------------
def test_dot_dot_is_refused(import_root):
    with pytest.raises(DatasetError) as error:
        services.Source.server_path("../secrets.jsonl")
    assert error.value.field == "path" and "'..'" in error.value.message


def test_absolute_path_outside_the_roots_is_refused(import_root, tmp_path):
    outside = tmp_path / "outside.jsonl"
    outside.write_bytes(b'{"a": 1}\n')
    with pytest.raises(DatasetError) as error:
        services.Source.server_path(str(outside))
    assert error.value.field == "path" and "outside the import roots" in error.value.message


def test_symlink_out_of_the_root_is_refused(import_root, tmp_path):
    outside = tmp_path / "outside.jsonl"
    outside.write_bytes(b'{"a": 1}\n')
    os.symlink(outside, import_root / "link.jsonl")
    with pytest.raises(DatasetError) as error:
        services.Source.server_path("link.jsonl")
    assert "outside the import roots" in error.value.message


def test_symlinked_file_inside_a_folder_pointing_out_is_refused(dataset, import_root, tmp_path, media_root):
    secret = tmp_path / "secret.txt"
    secret.write_text("do not read")
    folder = import_root / "docs"
    folder.mkdir()
    (folder / "a.txt").write_text("fine")
    os.symlink(secret, folder / "z.txt")
    with pytest.raises(DatasetError) as error:
        services.import_version(dataset, services.Source.server_path("docs"))
    assert error.value.field == "path" and "docs/z.txt" in error.value.message
    assert stored_files(media_root) == []


def test_missing_path_is_refused(import_root):
    with pytest.raises(DatasetError, match="no such file"):
        services.Source.server_path("nope.jsonl")


def test_versions_are_numbered_and_immutable(dataset, alice):
    first = services.import_version(dataset, upload("a.jsonl", b'{"a": 1}\n'), user=alice)
    second = services.write_version(dataset, [[{"b": 2}]], source="run 7, node publish")
    assert (first.number, second.number) == (1, 2)
    assert second.source == "run 7, node publish" and second.created_by is None
    second.source = "changed"
    with pytest.raises(VersionImmutable):
        second.save()
    assert DatasetVersion.objects.get(pk=second.pk).source == "run 7, node publish"


def test_a_version_records_the_run_that_produced_it(dataset, alice):
    from pipelines.engine.runs import start_run
    from tests.factories import create_pipeline

    run = start_run(
        create_pipeline(
            alice, {"name": "p", "nodes": [{"key": "a", "type": "wait", "config": {"duration_seconds": 1}}]}
        ),
        user=alice,
    )
    by_id = services.write_version(dataset, [[{"a": 1}]], produced_by_run=run.pk, source=f"run {run.pk}")
    by_row = services.write_version(dataset, [[{"a": 2}]], produced_by_run=run)
    assert by_id.produced_by_run == run and by_row.produced_by_run == run
    assert list(run.dataset_versions.order_by("number")) == [by_id, by_row]
