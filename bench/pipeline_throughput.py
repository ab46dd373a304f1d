"""Data throughput through the engine: a Data Cleaning node on real workers, in one piece and
sharded, against the hand-written loop (one process, and split over two) in the same run.

    .venv/bin/python bench/pipeline_throughput.py                     # 200,000 records (~250 MB)
    .venv/bin/python bench/pipeline_throughput.py --records 20000     # quick
    .venv/bin/python bench/pipeline_throughput.py --shards 1,2,4 --json figures.json

Self-contained like bench/engine_overhead.py (whose environment it uses): a fresh database,
a private redis-server and one Celery worker (prefork, concurrency 2). The corpus and the
chain are bench/data_throughput.py's. The corpus is imported as a dataset first (timed on its
own); then the pipeline Input Dataset → Data Cleaning runs, timed from start_run() to the run's
end. The cleaning node reads the records from the record store and writes its artifact there,
as the hand loop reads a JSONL file and writes one. Every tool must keep the same records.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
from pathlib import Path
import subprocess
import sys
import tempfile
import time

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench import data_throughput, engine_overhead  # noqa: E402


def hand_command(share: Path, batch_size: int) -> list[str]:
    script = str(ROOT / "bench" / "data_throughput.py")
    output = str(share.with_suffix(".out"))
    return [sys.executable, script, "--worker", "hand", "--input", str(share), "--output", output, "--batch-size",
            str(batch_size)]  # fmt: skip


def hand_split(corpus: Path, directory: Path, processes: int, batch_size: int) -> dict:
    """The hand loop over `processes` processes at once, each on its share of the lines
    (deduplicating within its share only: the reference's "split" figure)."""
    lines = corpus.read_bytes().splitlines(keepends=True)
    shares = []
    for index in range(processes):
        share = directory / f"share-{index}.jsonl"
        share.write_bytes(b"".join(lines[index::processes]))
        shares.append(share)
    del lines
    started = time.perf_counter()
    running = [
        subprocess.Popen(hand_command(share, batch_size), stdout=subprocess.PIPE, text=True, cwd=ROOT)
        for share in shares
    ]
    outputs = [json.loads(process.communicate()[0].strip().splitlines()[-1]) for process in running]
    seconds = time.perf_counter() - started
    records_in = sum(output["records_in"] for output in outputs)
    for share in shares:
        share.unlink()
        share.with_suffix(".out").unlink()
    return {"records_in": records_in, "seconds": seconds, "records_per_s": records_in / seconds}


def run_pipeline(owner, dataset, shards: int) -> dict:
    from pipelines.engine.runs import start_run
    from pipelines.engine.states import RunState
    from pipelines.models import NodeRun
    from tests.factories import create_pipeline

    document = {
        "name": f"clean, {shards} shards",
        "nodes": [
            {"key": "read", "type": "input_dataset", "config": {"dataset": dataset.name}},
            {
                "key": "clean",
                "type": "data_cleaning",
                "config": {"operators": data_throughput.CHAIN, "shards": shards},
            },
        ],
        "edges": [{"source": "read", "source_handle": "out", "target": "clean"}],
    }
    pipeline = create_pipeline(owner, document)
    started = time.perf_counter()
    run = start_run(pipeline, user=owner)
    while True:
        run.refresh_from_db(fields=["state", "error"])
        if run.state in RunState.FINISHED:
            break
        time.sleep(0.05)
    seconds = time.perf_counter() - started
    if run.state != RunState.SUCCEEDED:
        raise SystemExit(f"the run {run.state}: {run.error}")
    clean = NodeRun.objects.get(run=run, node_key="clean")
    return {
        "shards": shards,
        "records_in": clean.records_in,
        "records_out": clean.records_out,
        "seconds": seconds,
        "records_per_s": clean.records_in / seconds,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=int, default=200_000)
    parser.add_argument("--shards", default="1,2", help="comma-separated shard counts to run")
    parser.add_argument("--batch-size", type=int, default=1000)
    parser.add_argument("--json", type=Path, help="write the figures to this file")
    args = parser.parse_args(argv)
    shard_counts = [int(value) for value in args.shards.split(",")]

    with contextlib.ExitStack() as stack:
        directory = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="datamate-bench-data-")))
        corpus = directory / "corpus.jsonl"
        size = data_throughput.generate_corpus(corpus, args.records)
        print(f"corpus: {args.records:,} records, {size / 1e6:.0f} MB")
        hand = data_throughput.measure("hand", corpus, directory / "hand.jsonl", args.batch_size)
        hand2 = hand_split(corpus, directory, 2, args.batch_size)
        with engine_overhead.environment(print) as (_bench, database):
            from django.contrib.auth import get_user_model

            from datasets import services

            owner, _ = get_user_model().objects.get_or_create(username="bench-data")
            dataset = services.create_dataset(owner=owner, name="corpus")
            started = time.perf_counter()
            with corpus.open("rb") as handle:
                services.import_version(dataset, services.Source.upload(handle, "corpus.jsonl"))
            imported = time.perf_counter() - started
            ours = [run_pipeline(owner, dataset, shards) for shards in shard_counts]

    print(f"database: {database}; import: {args.records / imported:,.0f} records/s ({imported:.1f} s)")
    print(f"{'tool':<40}{'records/s':>12}{'kept':>10}{'seconds':>10}{'vs hand':>10}")
    rows = [("hand loop, 1 process", hand), ("hand loop split over 2 processes", hand2)]
    rows += [(f"engine: Data Cleaning, {o['shards']} shard(s)", o) for o in ours]
    for label, figures in rows:
        kept = figures.get("records_out", "")
        print(
            f"{label:<40}{figures['records_per_s']:>12,.0f}{kept!s:>10}{figures['seconds']:>10.1f}"
            f"{figures['records_per_s'] / hand['records_per_s']:>9.2f}x"
        )
    same = all(o["records_out"] == hand["records_out"] for o in ours)
    print("same records kept as the hand loop: " + ("yes" if same else "NO"))
    if args.json:
        figures = {"records": args.records, "database": database, "hand": hand, "hand_2": hand2, "ours": ours}
        args.json.write_text(json.dumps(figures, indent=2, sort_keys=True))
    return 0 if same else 1


if __name__ == "__main__":
    os.environ.setdefault("PYTHONHASHSEED", "0")
    sys.exit(main())
