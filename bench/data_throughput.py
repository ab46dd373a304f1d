"""Data throughput: a Data Cleaning node on real workers against a hand-written loop, in the same run.

    .venv/bin/python bench/data_throughput.py                      # 200,000 records (~250 MB), then 2x
    .venv/bin/python bench/data_throughput.py --records 20000      # quick
    .venv/bin/python bench/data_throughput.py --json figures.json

The corpus is generated here (seeded, nothing downloaded): HTML pages with scripts, styles,
inline markup, e-mail addresses and phone numbers, plus short pages, symbol-heavy pages and
duplicates (identical after cleaning). The chain: HTML to text -> whitespace -> e-mail/phone
mask -> length >= 50 -> special-character ratio <= 0.25 -> exact dedup.

- Hand loop: one `for line in file` loop written for this chain, in a fresh process, reading
  the JSON Lines file and writing the kept records.
- Ours: the pipeline Input Dataset -> Data Cleaning, run through the engine in
  bench/engine_overhead.py's environment (a fresh database, a private redis-server, one
  Celery worker), timed from start_run() to the run's end. "1 worker": concurrency 1, the
  node in one piece (`shards: 1`); "2 workers": concurrency 2, `shards: 2`.

Each engine run on the 1x corpus comes right after a hand-loop run of it, and its ratio is
taken against that one. Peak RSS: the hand process's own; for the worker, the largest peak
of its pool processes during the run. Everything runs again at twice the records for the
peak-RSS growth. Every run must keep the hand loop's records: the one-piece node byte for
byte, the sharded one the same lines (in partition order).
"""

from __future__ import annotations

import argparse
import contextlib
from hashlib import blake2b, sha256
import itertools
import json
import os
from pathlib import Path
import random
import re
import subprocess
import sys
import tempfile
import time

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

TARGETS = {"ratio_1_worker": (">=", 0.8), "ratio_2_workers": (">=", 1.4), "rss_growth_2x": ("<=", 1.1)}
#: Seconds one engine run may take before the benchmark gives up.
WAIT_TIMEOUT = float(os.environ.get("BENCH_WAIT_TIMEOUT", 3600))
WARM_UP_RECORDS = 1000


CHAIN = [
    {"name": "html_to_text"},
    {"name": "normalize_whitespace"},
    {"name": "mask_pii", "config": {"kinds": ["email", "phone"]}},
    {"name": "text_length", "config": {"min_length": 50}},
    {"name": "special_char_ratio", "config": {"max_ratio": 0.25}},
    {"name": "exact_dedup"},
]


# --- corpus ------------------------------------------------------------------------------

SYLLABLES = [
    "ka",
    "lo",
    "mi",
    "ne",
    "ra",
    "to",
    "shi",
    "an",
    "el",
    "or",
    "us",
    "im",
    "pa",
    "de",
    "ven",
    "tor",
    "ma",
    "li",
]


def generate_corpus(path: Path, records: int, seed: int = 7) -> int:
    """Writes `records` JSON Lines records to `path`; returns the file size in bytes."""
    import orjson

    rng = random.Random(seed)
    vocabulary = sorted({"".join(rng.choices(SYLLABLES, k=rng.randint(1, 4))) for _ in range(6000)})
    weights = [1 / (rank + 10) for rank in range(len(vocabulary))]  # Zipf-like word frequencies
    cumulative = []
    total = 0.0
    for weight in weights:
        total += weight
        cumulative.append(total)
    recent: list[list[str]] = []  # paragraphs of earlier pages, for duplicates

    def sentence() -> str:
        words = rng.choices(vocabulary, cum_weights=cumulative, k=rng.randint(6, 18))
        if rng.random() < 0.3:
            i = rng.randrange(len(words))
            words[i] = f"<b>{words[i]}</b>" if rng.random() < 0.5 else f'<a href="/w/{words[i]}">{words[i]}</a>'
        return " ".join(words).capitalize() + rng.choice([".", ".", ".", "!", "?", ","])

    def contact() -> str:
        parts = []
        if rng.random() < 0.5:
            parts.append(f"Write to {rng.choice(vocabulary)}.{rng.choice(vocabulary)}@example{rng.randint(1, 99)}.com")
        if rng.random() < 0.5:
            parts.append(
                rng.choice(
                    [
                        f"call +1 ({rng.randint(200, 999)}) {rng.randint(200, 999)}-{rng.randint(1000, 9999)}",
                        f"phone {rng.randint(200, 999)}-{rng.randint(200, 999)}-{rng.randint(1000, 9999)}",
                        f"mobile 1{rng.randint(3, 9)}{rng.randint(100000000, 999999999)}",
                        f"tel. +44 20 {rng.randint(1000, 9999)} {rng.randint(1000, 9999)}",
                    ]
                )
            )
        if rng.random() < 0.3:
            parts.append(f"open {rng.randint(8, 10)}:00-{rng.randint(16, 19)}:00, since {rng.randint(1990, 2024)}")
        return "; ".join(parts) or "No contact"

    def page(paragraphs: list[str], title: str) -> str:
        space = rng.choice([" ", "  ", "\n", "\t "])
        script = rng.random() < 0.6
        return (
            f"<html><head><title>{title}</title><style>p {{ margin: {rng.randint(0, 9)}px }}</style></head>{space}"
            f"<body><nav><a href='/'>Home</a> | <a href='/about'>About</a></nav>{space}<h1>{title}</h1>"
            + space.join(f"<p>{p}</p>" for p in paragraphs)
            + (f"<script>var n = {rng.randint(0, 10**6)}; track('{title}');</script>" if script else "")
            + "<footer>&copy; 2024 &amp; more</footer></body></html>"
        )

    size = 0
    with path.open("wb") as out:
        for i in range(records):
            roll = rng.random()
            if roll < 0.05:  # too short after cleaning
                text = f"<html><body><p>{rng.choice(['Not found', 'Loading...', 'Redirecting'])}</p></body></html>"
            elif roll < 0.10:  # mostly symbols: menus, tables of numbers, debris
                junk = " ".join(
                    rng.choice(["|", "::", "{}", "#", "***", "=>", "--", "[x]", "$$", "@@"]) for _ in range(120)
                )
                text = f"<html><body><div>{junk}</div><p>{sentence()}</p></body></html>"
            elif roll < 0.16 and recent:  # the same paragraphs again, other markup and spacing
                paragraphs = rng.choice(recent)
                text = page(paragraphs[1:], paragraphs[0])
            else:
                paragraphs = [" ".join(sentence() for _ in range(rng.randint(2, 5))) for _ in range(rng.randint(2, 4))]
                if rng.random() < 0.45:
                    paragraphs.append(contact())
                title = " ".join(rng.choices(vocabulary, k=3)).title()
                if rng.random() < 0.3:
                    # Duplicates must be identical after cleaning: the title is part of the text.
                    recent.append([title, *paragraphs])
                    if len(recent) > 500:
                        recent.pop(rng.randrange(len(recent)))
                    paragraphs = [title, *paragraphs]
                else:
                    paragraphs = [title, *paragraphs]
                text = page(paragraphs[1:], paragraphs[0])
            line = orjson.dumps({"id": i, "url": f"https://site{i % 977}.example/p/{i}", "text": text}) + b"\n"
            out.write(line)
            size += len(line)
    return size


# --- the hand loop -----------------------------------------------------------------------


def run_hand(source: Path, target: Path) -> dict:
    """The baseline: one loop, written for this chain, tuned the obvious ways."""
    import orjson
    from selectolax.lexbor import LexborHTMLParser

    from nodes.operators.pii import DIGIT, EMAIL, PHONE
    from nodes.operators.text import DROPPED_TAGS, HTML_HINT, INLINE_TAGS

    special_run = re.compile(r"(?:[^\w\s]|_)+")
    non_ascii_run = re.compile(r"[^\x00-\x7f]+")
    not_special_ascii = bytes(c for c in range(128) if chr(c).isalnum() or chr(c).isspace())

    def phone(match):
        value = match.group()
        start = match.start()
        if start > 0 and (match.string[start - 1].isalnum() or match.string[start - 1] in "+._-"):
            return value
        digits = len(DIGIT.findall(value))
        if digits <= 15:
            return "[PHONE]" if digits >= 9 else value
        out, group, count = [], [], 0
        for word in value.split(" "):
            n = len(DIGIT.findall(word))
            if group and count + n > 15:
                out.append("[PHONE]" if 9 <= count <= 15 else " ".join(group))
                group, count = [], 0
            group.append(word)
            count += n
        out.append("[PHONE]" if 9 <= count <= 15 else " ".join(group))
        return " ".join(out)

    started = time.perf_counter()
    seen: set[int] = set()
    records_in = records_out = 0
    with source.open("rb") as lines, target.open("wb") as out:
        for line in lines:
            records_in += 1
            record = orjson.loads(line)
            text = record.get("text")
            if not isinstance(text, str):
                continue
            if HTML_HINT.search(text):
                tree = LexborHTMLParser(text)
                lowered = text.lower()
                dropped = [tag for tag in DROPPED_TAGS if "<" + tag in lowered]
                if dropped:
                    tree.strip_tags(dropped)
                inline = [tag for tag in INLINE_TAGS if "<" + tag in lowered]
                if inline:
                    tree.unwrap_tags(inline)
                    tree.merge_text_nodes()
                text = tree.body.text(separator="\n") if tree.body is not None else ""
            lines_out, blank = [], False
            for part in text.splitlines():
                words = part.split()
                if words:
                    if blank and lines_out:
                        lines_out.append("")
                    lines_out.append(" ".join(words))
                    blank = False
                else:
                    blank = True
            text = "\n".join(lines_out)
            if "@" in text:
                text = EMAIL.sub("[EMAIL]", text)
            if DIGIT.search(text):
                text = PHONE.sub(phone, text)
            if len(text) < 50:
                continue
            if text.isascii():
                special = len(text.encode("ascii").translate(None, not_special_ascii))
            else:
                data = text.encode("utf-8", "surrogatepass")
                other = "".join(non_ascii_run.findall(text))
                special = (
                    len(data.translate(None, not_special_ascii))
                    - (len(data) - len(text) + len(other))
                    + sum(map(len, special_run.findall(other)))
                )
            if special > 0.25 * len(text):
                continue
            key = int.from_bytes(blake2b(text.encode("utf-8", "surrogatepass"), digest_size=8).digest(), "little")
            if key in seen:
                continue
            seen.add(key)
            record["text"] = text
            out.write(orjson.dumps(record) + b"\n")
            records_out += 1
    return {"records_in": records_in, "records_out": records_out, "seconds": time.perf_counter() - started}


def hand_process(source: Path, target: Path) -> None:
    """`--hand`: the hand loop in this (fresh) process; prints its figures as JSON."""
    figures = run_hand(source, target)
    figures["peak_rss_mb"] = peak_rss_mb()
    print(json.dumps(figures))


def peak_rss_mb(pid: int | str = "self") -> float:
    """A process's peak RSS (`VmHWM`; not getrusage's ru_maxrss, which Linux carries over exec
    from the parent)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmHWM for process {pid}: this benchmark needs Linux")


def reset_peak_rss(pid: int) -> None:
    """Restart a process's VmHWM from its current RSS (Linux: `clear_refs` 5)."""
    Path(f"/proc/{pid}/clear_refs").write_text("5")


def digest(lines) -> dict:
    """Of JSON lines: a sha256 in order, and an order-free one (a sum of 128-bit hashes)."""
    ordered = sha256()
    unordered = count = 0
    for line in lines:
        ordered.update(line)
        unordered += int.from_bytes(blake2b(line, digest_size=16).digest(), "little")
        count += 1
    return {"ordered": ordered.hexdigest(), "unordered": f"{unordered % 2**128:032x}", "lines": count}


def file_lines(path: Path):
    with path.open("rb") as lines:
        yield from lines


# --- the hand loop, in fresh processes ---------------------------------------------------


def hand(source: Path, target: Path) -> dict:
    result = subprocess.run(
        [sys.executable, __file__, "--hand", str(source), str(target)], capture_output=True, text=True, cwd=ROOT
    )
    if result.returncode != 0:
        raise SystemExit(f"the hand loop failed:\n{result.stderr}")
    figures = json.loads(result.stdout.strip().splitlines()[-1])
    figures["records_per_s"] = figures["records_in"] / figures["seconds"]
    figures["digest"] = digest(file_lines(target))
    target.unlink()
    return figures


def hand_split(source: Path, directory: Path, processes: int = 2) -> dict:
    """The hand loop over `processes` processes at once, each on every n-th line (deduplicating
    within its share only): what splitting the same loop gains on this machine."""
    shares = [directory / f"share-{index}.jsonl" for index in range(processes)]
    with contextlib.ExitStack() as files, source.open("rb") as lines:
        outs = [files.enter_context(share.open("wb")) for share in shares]
        for out, line in zip(itertools.cycle(outs), lines):
            out.write(line)
    command = [sys.executable, __file__, "--hand"]
    running = [
        subprocess.Popen([*command, str(share), str(share.with_suffix(".out"))], stdout=subprocess.PIPE, text=True)
        for share in shares
    ]
    outputs = [json.loads(process.communicate()[0].strip().splitlines()[-1]) for process in running]
    # They ran at once: the slowest one's loop is the split's time (start-up excluded, as for one).
    seconds = max(output["seconds"] for output in outputs)
    for share in shares:
        share.unlink()
        share.with_suffix(".out").unlink()
    records_in = sum(output["records_in"] for output in outputs)
    return {"records_in": records_in, "seconds": seconds, "records_per_s": records_in / seconds}


# --- ours: a pipeline run on the benchmark's worker -----------------------------------------


class Engine:
    def __init__(self, worker):
        from django.contrib.auth import get_user_model

        self.worker = worker
        self.owner, _ = get_user_model().objects.get_or_create(username="bench-data")

    def import_corpus(self, name: str, path: Path):
        from datasets import services

        dataset = services.create_dataset(owner=self.owner, name=name)
        with path.open("rb") as handle:
            services.import_version(dataset, services.Source.upload(handle, path.name))
        return dataset

    def clean(self, dataset, shards: int) -> dict:
        """Input Dataset -> Data Cleaning over `dataset`, timed from start_run() to the run's end."""
        from django.core.files.storage import default_storage

        from pipelines import services
        from pipelines.engine.runs import start_run
        from pipelines.engine.states import RunState
        from pipelines.models import NodeRun, Run

        document = {
            "name": f"clean {dataset.name}, {shards} shards",
            "nodes": [
                {"key": "read", "type": "input_dataset", "config": {"dataset": dataset.name}},
                {"key": "clean", "type": "data_cleaning", "config": {"operators": CHAIN, "shards": shards}},
            ],
            "edges": [{"source": "read", "source_handle": "out", "target": "clean"}],
        }
        pipeline = services.import_pipeline(owner=self.owner, document=document)
        pool = self.pool_pids()
        for pid in pool:
            reset_peak_rss(pid)
        started = time.perf_counter()
        run = start_run(pipeline, user=self.owner)
        while (state := Run.objects.filter(pk=run.pk).values_list("state", flat=True).get()) not in RunState.FINISHED:
            if not self.worker.alive():
                raise RuntimeError(f"the worker died:\n{self.worker.output()[-3000:]}")
            if time.perf_counter() - started > WAIT_TIMEOUT:
                raise RuntimeError(f"run {run.pk} did not finish in {WAIT_TIMEOUT:g} s")
            time.sleep(0.02)
        seconds = time.perf_counter() - started
        if self.pool_pids() != pool:
            raise RuntimeError("the worker replaced a pool process during the run: its peak RSS is lost")
        peak = max(peak_rss_mb(pid) for pid in pool)
        if state != RunState.SUCCEEDED:
            run.refresh_from_db()
            raise RuntimeError(f"run {run.pk} {state}: {run.error}")
        clean = NodeRun.objects.get(run=run, node_key="clean")

        def artifact_lines():
            for part in clean.output["manifest"]["parts"]:
                with default_storage.open(part["name"], "rb") as lines:
                    yield from lines

        return {
            "shards": shards,
            "records_in": clean.records_in,
            "records_out": clean.records_out,
            "seconds": seconds,
            "records_per_s": clean.records_in / seconds,
            "peak_rss_mb": peak,
            "steps": {step["name"]: step["seconds"] for step in clean.output["operators"]["steps"]},
            "digest": digest(artifact_lines()),
        }

    def pool_pids(self) -> list[int]:
        import psutil

        return sorted(child.pid for child in psutil.Process(self.worker.popen.pid).children(recursive=True))


# --- orchestration -----------------------------------------------------------------------


def write_head(source: Path, target: Path, records: int) -> None:
    """The first `records` lines of `source`: the seeded generator makes the same records first
    whatever the size, so the 1x corpus is the first half of the 2x one."""
    with source.open("rb") as lines, target.open("wb") as out:
        out.writelines(itertools.islice(lines, records))


def same_records(ours: dict, baseline: dict) -> bool:
    key = "ordered" if ours["shards"] == 1 else "unordered"
    return ours["digest"][key] == baseline["digest"][key] and ours["digest"]["lines"] == baseline["digest"]["lines"]


def measure(records: int, directory: Path, progress) -> dict:
    from bench import engine_overhead

    sizes = {"1x": records, "2x": 2 * records}
    corpora = {size: directory / f"corpus-{size}.jsonl" for size in sizes}
    started = time.perf_counter()
    corpus_bytes = generate_corpus(corpora["2x"], sizes["2x"])
    write_head(corpora["2x"], corpora["1x"], records)
    write_head(corpora["1x"], directory / "warm-up.jsonl", WARM_UP_RECORDS)
    progress(f"corpus: {sizes['2x']:,} records, {corpus_bytes / 1e6:.0f} MB, in {time.perf_counter() - started:.0f} s")
    output = directory / "hand.jsonl"
    rows: dict = {}
    with engine_overhead.environment(progress, concurrency=1) as (bench, database):
        engine = Engine(bench.worker)
        datasets = {size: engine.import_corpus(f"corpus-{size}", path) for size, path in corpora.items()}
        warm_up = engine.import_corpus("warm-up", directory / "warm-up.jsonl")
        for workers in (1, 2):
            if workers != bench.worker.concurrency:
                bench.worker.restart(workers)
                progress(f"worker restarted (pid {bench.worker.popen.pid}, concurrency {workers})")
            engine.clean(warm_up, workers)  # the pool processes import and connect before timing
            for size in sizes:
                if size == "1x" or workers == 1:  # the hand loop at 2x once, for its RSS growth
                    rows[f"hand {size} ({workers})"] = hand(corpora[size], output)
                    progress(f"hand loop {size}: {rows[f'hand {size} ({workers})']['records_per_s']:,.0f} records/s")
                if size == "1x" and workers == 2:
                    rows["hand split 1x"] = hand_split(corpora[size], directory)
                rows[f"ours {size} {workers}"] = ours = engine.clean(datasets[size], workers)
                progress(f"ours {size}, {workers} worker(s): {ours['records_per_s']:,.0f} records/s")
    rows["database"] = database
    return rows


def report(records: int, rows: dict) -> dict:
    print()
    print(f"Data throughput: {records:,} records (and 2x); database {rows['database']}")
    print(f"{'':<36}{'records/s':>11}{'vs hand':>9}{'peak RSS MB':>13}{'kept':>10}{'seconds':>9}  same records")
    table = [
        ("hand loop, 1 process", "1x", rows["hand 1x (1)"], None),
        ("ours, 1 worker (shards: 1)", "1x", rows["ours 1x 1"], rows["hand 1x (1)"]),
        ("hand loop, 1 process", "1x", rows["hand 1x (2)"], None),
        ("hand loop split over 2 processes", "1x", rows["hand split 1x"], rows["hand 1x (2)"]),
        ("ours, 2 workers (shards: 2)", "1x", rows["ours 1x 2"], rows["hand 1x (2)"]),
        ("hand loop, 1 process", "2x", rows["hand 2x (1)"], None),
        ("ours, 1 worker (shards: 1)", "2x", rows["ours 2x 1"], rows["hand 2x (1)"]),
        ("ours, 2 workers (shards: 2)", "2x", rows["ours 2x 2"], rows["hand 2x (1)"]),
    ]
    same = True
    for label, size, row, baseline in table:
        ratio = f"{row['records_per_s'] / baseline['records_per_s']:>8.2f}x" if baseline else f"{'':>9}"
        rss = f"{row['peak_rss_mb']:>13.1f}" if "peak_rss_mb" in row else f"{'':>13}"
        kept = f"{row['records_out']:>10,}" if "records_out" in row else f"{'':>10}"
        check = ""
        if "shards" in row:
            ok = same_records(row, rows[f"hand {size} (1)"])
            same &= ok
            check = "  yes" + (" (byte-identical)" if row["shards"] == 1 else " (same lines)") if ok else "  NO"
        print(f"{size} {label:<33}{row['records_per_s']:>11,.0f}{ratio}{rss}{kept}{row['seconds']:>9.1f}{check}")
    steps = rows["ours 1x 1"]["steps"]
    print("seconds per operator (ours, 1 worker, 1x): " + ", ".join(f"{k} {v:.1f}" for k, v in steps.items()))
    figures = {
        "records": records,
        "ratio_1_worker": rows["ours 1x 1"]["records_per_s"] / rows["hand 1x (1)"]["records_per_s"],
        "ratio_2_workers": rows["ours 1x 2"]["records_per_s"] / rows["hand 1x (2)"]["records_per_s"],
        "rss_growth_2x": max(rows[f"ours 2x {w}"]["peak_rss_mb"] / rows[f"ours 1x {w}"]["peak_rss_mb"] for w in (1, 2)),
        "hand_records_per_s": rows["hand 1x (1)"]["records_per_s"],
        "hand_split_ratio": rows["hand split 1x"]["records_per_s"] / rows["hand 1x (2)"]["records_per_s"],
        "rss_growth_hand": rows["hand 2x (1)"]["peak_rss_mb"] / rows["hand 1x (1)"]["peak_rss_mb"],
        "same_records": same,
        "database": rows["database"],
    }
    growth = ", ".join(
        f"{w} worker{'s' * (w > 1)} x{rows[f'ours 2x {w}']['peak_rss_mb'] / rows[f'ours 1x {w}']['peak_rss_mb']:.2f}"
        for w in (1, 2)
    )
    print(f"peak RSS growth at 2x: ours {growth}; hand loop x{figures['rss_growth_hand']:.2f}")
    for name, (sense, target) in TARGETS.items():
        met = figures[name] >= target if sense == ">=" else figures[name] <= target
        print(f"{name} = {figures[name]:.2f}   target {sense} {target:g}  {'met' if met else 'MISSED'}")
    print("same records kept as the hand loop: " + ("yes" if same else "NO"))
    return figures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", type=int, default=200_000)
    parser.add_argument("--json", type=Path, help="write the figures here")
    parser.add_argument("--hand", nargs=2, type=Path, metavar=("INPUT", "OUTPUT"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.hand:
        hand_process(*args.hand)
        return 0

    from bench import engine_overhead

    engine_overhead.stop_cleanly_on_signals()
    progress = engine_overhead.progress
    with tempfile.TemporaryDirectory(prefix="datamate-bench-data-") as directory:
        rows = measure(args.records, Path(directory), progress)
    figures = report(args.records, rows)
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2) + "\n")
    return 0 if figures["same_records"] else 1


if __name__ == "__main__":
    os.environ.setdefault("PYTHONHASHSEED", "0")
    sys.exit(main())
