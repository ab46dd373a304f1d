"""Data throughput: the operator library against a hand-written loop, on a synthetic corpus.

    .venv/bin/python bench/data_throughput.py                      # 200,000 records (~250 MB)
    .venv/bin/python bench/data_throughput.py --records 20000      # quick
    .venv/bin/python bench/data_throughput.py --growth             # also at 2x: peak-RSS growth
    .venv/bin/python bench/data_throughput.py --json figures.json

The corpus is generated here (seeded, nothing downloaded): HTML pages with scripts, styles,
inline markup, e-mail addresses and phone numbers, plus short pages, symbol-heavy pages and
duplicates (identical after cleaning). Both tools run the chain HTML strip -> whitespace ->
e-mail/phone mask -> length >= 50 -> special-character ratio <= 0.25 -> exact dedup, each in
a fresh process (so peak RSS is its own), reading the JSON Lines file and writing the kept
records; the outputs must be byte-identical.
"""

from __future__ import annotations

import argparse
from hashlib import blake2b, sha256
import json
import os
from pathlib import Path
import random
import re
import resource
import subprocess
import sys
import tempfile
import time

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

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


# --- the two tools -----------------------------------------------------------------------


def read_batches(path: Path, batch_size: int):
    import orjson

    batch = []
    with path.open("rb") as source:
        for line in source:
            batch.append(orjson.loads(line))
            if len(batch) == batch_size:
                yield batch
                batch = []
    if batch:
        yield batch


def run_ours(source: Path, target: Path, batch_size: int) -> dict:
    import orjson

    from nodes.operators.chain import Chain

    started = time.perf_counter()
    chain = Chain.from_steps(CHAIN)
    dumps = orjson.dumps
    with target.open("wb") as out:
        for kept in chain.process(read_batches(source, batch_size)):
            out.write(b"".join(dumps(record) + b"\n" for record in kept))
    seconds = time.perf_counter() - started
    report = chain.report()
    return {
        "records_in": report["records_in"],
        "records_out": report["records_out"],
        "seconds": seconds,
        "steps": {s["name"]: {"seconds": s["seconds"], "dropped": s["dropped"]} for s in report["steps"]},
    }


def run_hand(source: Path, target: Path, batch_size: int) -> dict:
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


def peak_rss_mb() -> float:
    """This process's own peak RSS. Not getrusage's ru_maxrss: Linux carries that over exec
    from the parent, so a child would report the orchestrator's peak."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # not Linux: best effort


def file_sha256(path: Path) -> str:
    digest = sha256()
    with path.open("rb") as source:
        while chunk := source.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def worker(tool: str, source: Path, target: Path, batch_size: int) -> None:
    figures = (run_ours if tool == "ours" else run_hand)(source, target, batch_size)
    figures["peak_rss_mb"] = peak_rss_mb()
    print(json.dumps(figures))


# --- orchestration -----------------------------------------------------------------------


def measure(tool: str, source: Path, target: Path, batch_size: int) -> dict:
    result = subprocess.run(
        [sys.executable, __file__, "--worker", tool, "--input", str(source), "--output", str(target),
         "--batch-size", str(batch_size)],
        capture_output=True, text=True, cwd=ROOT,
    )  # fmt: skip
    if result.returncode != 0:
        raise SystemExit(f"{tool} failed:\n{result.stderr}")
    figures = json.loads(result.stdout.strip().splitlines()[-1])
    figures["records_per_s"] = figures["records_in"] / figures["seconds"]
    figures["output_sha256"] = file_sha256(target)
    return figures


def run_size(records: int, directory: Path, batch_size: int) -> dict:
    corpus = directory / f"corpus-{records}.jsonl"
    started = time.perf_counter()
    size = generate_corpus(corpus, records)
    print(f"corpus: {records:,} records, {size / 1e6:.0f} MB, generated in {time.perf_counter() - started:.1f} s")
    hand = measure("hand", corpus, directory / "hand.jsonl", batch_size)
    ours = measure("ours", corpus, directory / "ours.jsonl", batch_size)
    same = hand["output_sha256"] == ours["output_sha256"]
    print(f"{'tool':<28}{'records/s':>12}{'peak RSS MB':>14}{'kept':>10}{'seconds':>10}")
    for label, figures in (("hand loop (orjson), 1 proc", hand), ("operator chain, 1 proc", ours)):
        print(
            f"{label:<28}{figures['records_per_s']:>12,.0f}{figures['peak_rss_mb']:>14.1f}"
            f"{figures['records_out']:>10,}{figures['seconds']:>10.1f}"
        )
    ratios = {
        "speed_ratio": ours["records_per_s"] / hand["records_per_s"],
        "rss_ratio": ours["peak_rss_mb"] / hand["peak_rss_mb"],
    }
    print(f"ours / hand: speed x{ratios['speed_ratio']:.2f}, peak RSS x{ratios['rss_ratio']:.2f}")
    print("same output: " + ("yes (byte-identical)" if same else "NO"))
    print("time per step (ours): " + ", ".join(f"{name} {s['seconds']:.1f}s" for name, s in ours["steps"].items()))
    for path in (corpus, directory / "hand.jsonl", directory / "ours.jsonl"):
        path.unlink()
    return {"records": records, "corpus_mb": size / 1e6, "hand": hand, "ours": ours, "same_output": same, **ratios}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", type=int, default=200_000)
    parser.add_argument("--batch-size", type=int, default=1000)
    parser.add_argument("--growth", action="store_true", help="run again at 2x the records; report peak-RSS growth")
    parser.add_argument("--json", type=Path, help="write the figures here")
    parser.add_argument("--worker", choices=["ours", "hand"], help=argparse.SUPPRESS)
    parser.add_argument("--input", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--output", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args.worker, args.input, args.output, args.batch_size)
        return 0
    with tempfile.TemporaryDirectory(prefix="datamate-bench-") as tmp:
        runs = [run_size(args.records, Path(tmp), args.batch_size)]
        if args.growth:
            runs.append(run_size(2 * args.records, Path(tmp), args.batch_size))
    figures: dict = {"runs": runs, "same_output": all(run["same_output"] for run in runs)}
    if args.growth:
        small, large = runs
        figures["rss_growth_hand"] = large["hand"]["peak_rss_mb"] / small["hand"]["peak_rss_mb"]
        figures["rss_growth_ours"] = large["ours"]["peak_rss_mb"] / small["ours"]["peak_rss_mb"]
        print(
            f"peak RSS growth at 2x the corpus: hand loop x{figures['rss_growth_hand']:.2f}, "
            f"operator chain x{figures['rss_growth_ours']:.2f} (target <= x1.10)"
        )
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2, sort_keys=True))
    return 0 if figures["same_output"] else 1


if __name__ == "__main__":
    os.environ.setdefault("PYTHONHASHSEED", "0")
    sys.exit(main())
