"""A chain of operators run over a stream of record batches, with bounded bookkeeping.

    chain = Chain.from_steps([{"name": "html_to_text"}, {"name": "text_length", "config": {"min_length": 50}}])
    for kept in chain.process(batches):   # batches: iterable of lists of dicts
        write(kept)
    summary = chain.report()             # JSON-serialisable; part of a Data Cleaning node's output

Each operator gets the whole batch in turn (one call and one clock reading per operator per
batch, not per record). Per operator the chain counts records in, kept, dropped by reason
and seconds, and keeps up to `samples_per_reason` dropped records per reason (string values
cut to `sample_chars`), so "why was this dropped" has examples. Everything it keeps is
bounded by configuration: memory does not grow with the data, except the deduplicators'
compact state (see `dedup.py`). Records are changed in place.

Sharded runs
------------
Mappers and filters look at one record at a time, so any split of the input works and the
shards' reports combine with `Chain.merge_reports([...])`.

A deduplicator must see every record that could duplicate another, so a sharded run routes by
its key (`Deduplicator.key(record)`, a pure function of the record as it arrives at that
step):

1. `chain.stages()` splits the chain before each deduplicator: stage 0 holds the steps
   before the first one, each later stage starts with a deduplicator.
2. Stage 0 runs on arbitrary input shards. Each record leaving a stage is written to
   partition `stage.partition(record, n)` (`key % n`) of the next stage.
3. Each partition of the next stage runs in one task: equal keys meet in one place, and one
   task holds 1/n of the dedup state, so `n` bounds a worker's memory. Repeat per stage.

The reports of a stage's tasks merge with `merge_reports`; `join_reports` puts the stages'
merged reports back into one report for the whole chain. `near_dedup` has no exact key (its
LSH bands are many keys), so its stage must run as one partition.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
import itertools
import time
from typing import Any

from nodes.operators import registry
from nodes.operators.base import Deduplicator, Operator, OperatorConfigError

NOT_AN_OBJECT = "not_an_object"
#: A plug-in giving free-form reasons cannot grow the counters without bound.
MAX_REASONS = 100
OTHER_REASONS = "other_reasons"


def _sample(record: Any, max_chars: int) -> Any:
    """A small copy of a dropped record, for the report."""
    if not isinstance(record, dict):
        return repr(record)[:max_chars]
    sample = {}
    for key, value in record.items():
        if isinstance(value, str):
            sample[key] = value if len(value) <= max_chars else value[:max_chars] + "…"
        elif value is None or isinstance(value, bool | int | float):
            sample[key] = value
        else:
            text = repr(value)
            sample[key] = value if len(text) <= max_chars else text[:max_chars] + "…"
    return sample


class StepStats:
    __slots__ = ("dropped", "kept", "records_in", "samples", "seconds")

    def __init__(self) -> None:
        self.records_in = 0
        self.kept = 0
        self.seconds = 0.0
        self.dropped: dict[str, int] = {}
        self.samples: dict[str, list[Any]] = {}


class Chain:
    def __init__(self, operators: list[Operator], samples_per_reason: int = 5, sample_chars: int = 500):
        self.operators = list(operators)
        self.samples_per_reason = samples_per_reason
        self.sample_chars = sample_chars
        self.stats = [StepStats() for _ in self.operators]
        self.records_in = 0
        self.records_out = 0
        self.rejected: dict[str, int] = {}

    @classmethod
    def from_steps(
        cls, steps: list[dict[str, Any]], text_field: str = "text", path: str = "operators", **options: Any
    ) -> Chain:
        """A chain from `[{"name": ..., "config": {...}}, ...]`; errors name the field, e.g.
        `operators[2].config.min_length`."""
        operators = [operator(config, text_field=text_field) for operator, config in cls.check_steps(steps, path)]
        return cls(operators, **options)

    @staticmethod
    def check_steps(steps: Any, path: str = "operators") -> list[tuple[type[Operator], dict[str, Any]]]:
        """(operator class, checked config) per step, building nothing: what the graph
        validator runs on every save. Raises OperatorConfigError naming the field."""
        if not isinstance(steps, list):
            raise OperatorConfigError(path, "must be a list of operators")
        checked = []
        for index, step in enumerate(steps):
            where = f"{path}[{index}]"
            if not isinstance(step, dict):
                raise OperatorConfigError(where, "must be an object with name and config")
            unknown = sorted(set(step) - {"name", "config"})
            if unknown:
                raise OperatorConfigError(f"{where}.{unknown[0]}", "is not a known field")
            name = step.get("name")
            if not isinstance(name, str):
                raise OperatorConfigError(f"{where}.name", "is required")
            try:
                operator = registry.get(name)
            except registry.UnknownOperator:
                raise OperatorConfigError(f"{where}.name", f"unknown operator {name!r}") from None
            config = step.get("config") or {}
            if not isinstance(config, dict):
                raise OperatorConfigError(f"{where}.config", "must be an object")
            checked.append((operator, operator.checked_config(config, path=f"{where}.config")))
        return checked

    # --- running -------------------------------------------------------------------

    def process_batch(self, records: list[Any]) -> list[dict[str, Any]]:
        """The records of the batch that every operator kept, in their order."""
        self.records_in += len(records)
        batch = [record for record in records if record.__class__ is dict]
        if len(batch) != len(records):
            self.rejected[NOT_AN_OBJECT] = self.rejected.get(NOT_AN_OBJECT, 0) + len(records) - len(batch)
        clock = time.perf_counter
        for operator, stats in zip(self.operators, self.stats, strict=True):
            if not batch:
                break
            stats.records_in += len(batch)
            started = clock()
            batch, dropped = operator.process_batch(batch)
            stats.seconds += clock() - started
            stats.kept += len(batch)
            if dropped:
                self._count_dropped(stats, dropped)
        self.records_out += len(batch)
        return batch

    def process(self, batches: Iterable[list[Any]]) -> Iterator[list[dict[str, Any]]]:
        """Streams: one (possibly empty) list of kept records per input batch."""
        for records in batches:
            yield self.process_batch(records)

    def _count_dropped(self, stats: StepStats, dropped: list[tuple[dict[str, Any], str]]) -> None:
        counts = stats.dropped
        samples = stats.samples
        limit = self.samples_per_reason
        for record, reason in dropped:
            if reason not in counts and len(counts) >= MAX_REASONS:
                reason = OTHER_REASONS
            counts[reason] = counts.get(reason, 0) + 1
            kept = samples.setdefault(reason, [])
            if len(kept) < limit:
                kept.append(_sample(record, self.sample_chars))

    # --- sharding ------------------------------------------------------------------

    def stages(self) -> list[Chain]:
        """The chain cut before each deduplicator (see the module docstring)."""
        cuts = [i for i, op in enumerate(self.operators) if isinstance(op, Deduplicator) and i > 0]
        bounds = [0, *cuts, len(self.operators)]
        return [
            Chain(self.operators[start:end], self.samples_per_reason, self.sample_chars)
            for start, end in itertools.pairwise(bounds)
        ]

    def partition(self, record: dict[str, Any], partitions: int) -> int:
        """Which partition a record goes to before this stage: by its first deduplicator's key."""
        first = self.operators[0] if self.operators else None
        if partitions <= 1 or not isinstance(first, Deduplicator):
            return 0
        key = first.key(record)
        # A record without a key is dropped by the deduplicator wherever it goes.
        return key % partitions if isinstance(key, int) else 0

    # --- reporting -----------------------------------------------------------------

    def report(self) -> dict[str, Any]:
        """A JSON-serialisable summary: totals, and per step counters, metrics and samples."""
        steps = []
        for index, (operator, stats) in enumerate(zip(self.operators, self.stats, strict=True)):
            step = {
                "index": index,
                "name": operator.name,
                "kind": operator.kind,
                "version": operator.version,
                "in": stats.records_in,
                "kept": stats.kept,
                "dropped": dict(sorted(stats.dropped.items())),
                "seconds": round(stats.seconds, 6),
                "samples": {reason: list(samples) for reason, samples in sorted(stats.samples.items())},
            }
            metrics = getattr(operator, "metrics", None)
            if metrics:
                step["metrics"] = dict(metrics)
            steps.append(step)
        return {
            "records_in": self.records_in,
            "records_out": self.records_out,
            "rejected": dict(self.rejected),
            "samples_per_reason": self.samples_per_reason,
            "steps": steps,
        }

    @staticmethod
    def merge_reports(reports: list[dict[str, Any]]) -> dict[str, Any]:
        """One report from the reports of shards that ran the same steps on parts of the input."""
        if not reports:
            raise ValueError("no reports to merge")
        signature = [(s["name"], s["version"]) for s in reports[0]["steps"]]
        for report in reports[1:]:
            if [(s["name"], s["version"]) for s in report["steps"]] != signature:
                raise ValueError("reports of different chains cannot be merged")
        limit = max(report["samples_per_reason"] for report in reports)
        merged: dict[str, Any] = {
            "records_in": sum(r["records_in"] for r in reports),
            "records_out": sum(r["records_out"] for r in reports),
            "rejected": _sum_counts(r["rejected"] for r in reports),
            "samples_per_reason": limit,
            "steps": [],
        }
        for index, first in enumerate(reports[0]["steps"]):
            parts = [report["steps"][index] for report in reports]
            samples: dict[str, list[Any]] = {}
            for part in parts:
                for reason, items in part["samples"].items():
                    room = limit - len(samples.setdefault(reason, []))
                    samples[reason].extend(items[:room])
            step = {
                **{key: first[key] for key in ("index", "name", "kind", "version")},
                "in": sum(p["in"] for p in parts),
                "kept": sum(p["kept"] for p in parts),
                "dropped": dict(sorted(_sum_counts(p["dropped"] for p in parts).items())),
                "seconds": round(sum(p["seconds"] for p in parts), 6),
                "samples": dict(sorted(samples.items())),
            }
            metrics = [p["metrics"] for p in parts if p.get("metrics")]
            if metrics:
                step["metrics"] = _sum_counts(metrics)
            merged["steps"].append(step)
        return merged

    @staticmethod
    def join_reports(stage_reports: list[dict[str, Any]]) -> dict[str, Any]:
        """One report for a chain from the merged reports of its stages, in order."""
        if not stage_reports:
            raise ValueError("no reports to join")
        steps = []
        for report in stage_reports:
            for step in report["steps"]:
                steps.append({**step, "index": len(steps)})
        return {
            "records_in": stage_reports[0]["records_in"],
            "records_out": stage_reports[-1]["records_out"],
            "rejected": _sum_counts(r["rejected"] for r in stage_reports),
            "samples_per_reason": max(r["samples_per_reason"] for r in stage_reports),
            "steps": steps,
        }


def _sum_counts(counts: Iterable[dict[str, int]]) -> dict[str, int]:
    total: dict[str, int] = {}
    for part in counts:
        for key, value in part.items():
            total[key] = total.get(key, 0) + value
    return total
