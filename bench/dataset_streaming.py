"""Dataset import/export: throughput against a bare read loop, and peak memory.

    .venv/bin/python bench/dataset_streaming.py              # a 64 MiB JSONL file
    .venv/bin/python bench/dataset_streaming.py --mib 512

Self-contained: a temp directory holds the SQLite database, the storage root and the
source file, and is deleted at the end. The baseline is `for line in file: orjson.loads(line)`
over the same file in the same run; the figure that matters is the peak RSS growth, which
must stay flat as --mib grows (nothing holds the whole dataset).
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
import shutil
import sys
import tempfile
import threading
import time

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


class PeakRss:
    """Samples this process's RSS every few ms; `growth` is the peak above the start."""

    def __init__(self):
        import psutil

        self.process = psutil.Process()
        self.start = self.peak = self.process.memory_info().rss
        self.running = True
        self.thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self):
        while self.running:
            self.peak = max(self.peak, self.process.memory_info().rss)
            time.sleep(0.005)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.running = False
        self.thread.join()

    @property
    def growth_mib(self) -> float:
        return (self.peak - self.start) / 2**20


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--mib", type=int, default=64, help="size of the generated JSONL file (MiB)")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="datamate-bench-ds-"))
    os.environ["DATAMATE_VAR_DIR"] = str(work / "var")
    os.environ["DATAMATE_STORAGE_ROOT"] = str(work / "media")
    os.environ.pop("DATABASE_URL", None)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "datamate.settings")
    try:
        import django

        django.setup()
        from django.contrib.auth import get_user_model
        from django.core.management import call_command
        import orjson

        from datasets import services

        call_command("migrate", verbosity=0)
        user = get_user_model().objects.create_user("bench")
        dataset = services.create_dataset(owner=user, name="bench")

        source = work / "source.jsonl"
        line = orjson.dumps({"text": "lorem ipsum dolor sit amet " * 20, "lang": "en", "score": 0.5}) + b"\n"
        with source.open("wb") as handle:
            for _ in range(args.mib * 2**20 // len(line)):
                handle.write(line)
        size_mib = source.stat().st_size / 2**20

        rows = []
        started = time.perf_counter()
        with PeakRss() as peak, source.open("rb") as handle:
            for raw in handle:
                orjson.loads(raw)
        baseline = time.perf_counter() - started
        rows.append(("baseline: read + orjson.loads", baseline, peak.growth_mib))

        started = time.perf_counter()
        with PeakRss() as peak, source.open("rb") as handle:
            version = services.import_version(dataset, services.Source.upload(handle, "source.jsonl"), user=user)
        rows.append(("import JSONL", time.perf_counter() - started, peak.growth_mib))

        for fmt in ("jsonl", "csv", "parquet"):
            started = time.perf_counter()
            with PeakRss() as peak:
                for _ in services.export_version(version, fmt).chunks:
                    pass
            rows.append((f"export {fmt}", time.perf_counter() - started, peak.growth_mib))

        started = time.perf_counter()
        with PeakRss() as peak:
            services.stats(version)
        rows.append(("stats", time.perf_counter() - started, peak.growth_mib))

        print(f"{version.record_count} records, {size_mib:.0f} MiB of JSONL")
        print(f"{'step':32} {'seconds':>8} {'MiB/s':>8} {'x baseline':>10} {'peak RSS +MiB':>14}")
        for name, seconds, growth in rows:
            print(f"{name:32} {seconds:8.2f} {size_mib / seconds:8.1f} {seconds / baseline:10.2f} {growth:14.1f}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
