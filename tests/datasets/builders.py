"""Source files for the dataset tests, written in every format the importer reads."""

import csv
import io
import json

import pyarrow as pa
import pyarrow.parquet as pq


def sample_records(n: int = 12) -> list[dict]:
    return [
        {
            "id": i,
            "text": f"Document {i}: " + "lorem ipsum " * (i % 5),
            "lang": "en" if i % 3 else "de",
            "score": round(i * 0.25, 2),
            "ok": i % 2 == 0,
            "meta": {"source": "web", "tags": ["a", "b"][: i % 3]},
        }
        for i in range(n)
    ]


def flat(records: list[dict]) -> list[dict]:
    """What a CSV can hold: string columns."""
    return [{"id": str(r["id"]), "text": r["text"], "lang": r["lang"]} for r in records]


def jsonl_bytes(records: list[dict]) -> bytes:
    return b"".join(json.dumps(record).encode() + b"\n" for record in records)


def json_bytes(records: list[dict]) -> bytes:
    return json.dumps(records, indent=2).encode()


def csv_bytes(records: list[dict]) -> bytes:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(records[0]))
    writer.writeheader()
    writer.writerows(records)
    return buffer.getvalue().encode()


def parquet_bytes(records: list[dict]) -> bytes:
    sink = io.BytesIO()
    pq.write_table(pa.Table.from_pylist(records), sink, row_group_size=5)
    return sink.getvalue()
