"""Dataset statistics in one streaming pass with bounded memory.

Per field: how often it is present, its JSON types, string lengths (min, max, mean and a
histogram with fixed, doubling bins, so no first pass is needed to find the range),
numeric min/max/mean, and the most frequent short values. Top values come from a
Misra-Gries summary of bounded size: exact while a field has fewer distinct values than
its capacity, a lower bound on each count afterwards (reported as `top_values_exact`).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from datasets.records import json_type

#: Bin edges of the text-length histogram, in characters; the last bin is open-ended.
LENGTH_BIN_EDGES = [0, 1, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384, 32768, 65536]
TOP_VALUES = 10
TOP_CAPACITY = 1000
#: Longer strings are not counted as values (they are documents, not categories).
TOP_VALUE_MAX_CHARS = 200
#: Fields beyond this many (records with free-form keys) are counted but not described.
MAX_FIELDS = 200


class TopValues:
    """Misra-Gries frequent items: at most `capacity` counters."""

    def __init__(self, capacity: int = TOP_CAPACITY):
        self.capacity = capacity
        self.counts: dict[Any, int] = {}
        self.exact = True

    def add(self, value: Any) -> None:
        counts = self.counts
        if value in counts:
            counts[value] += 1
        elif len(counts) < self.capacity:
            counts[value] = 1
        else:
            self.exact = False
            for key in list(counts):
                counts[key] -= 1
                if not counts[key]:
                    del counts[key]

    def top(self, k: int = TOP_VALUES) -> list[dict[str, Any]]:
        items = sorted(self.counts.items(), key=lambda item: (-item[1], str(item[0])))[:k]
        return [{"value": value, "count": count} for value, count in items]


def _bin(length: int) -> int:
    """Index of the histogram bin that holds `length`."""
    low, high = 0, len(LENGTH_BIN_EDGES) - 1
    if length >= LENGTH_BIN_EDGES[high]:
        return high
    while high - low > 1:
        middle = (low + high) // 2
        if length >= LENGTH_BIN_EDGES[middle]:
            low = middle
        else:
            high = middle
    return low


class FieldStats:
    def __init__(self, name: str):
        self.name = name
        self.present = 0
        self.types: dict[str, int] = {}
        self.lengths = [0] * len(LENGTH_BIN_EDGES)
        self.length_min: int | None = None
        self.length_max = 0
        self.length_sum = 0
        self.strings = 0
        self.numbers = 0
        self.number_min: float | None = None
        self.number_max: float | None = None
        self.number_sum = 0.0
        self.top = TopValues()

    def add(self, value: Any) -> None:
        self.present += 1
        kind = json_type(value)
        self.types[kind] = self.types.get(kind, 0) + 1
        if kind == "string":
            text = value if isinstance(value, str) else str(value)
            length = len(text)
            self.strings += 1
            self.length_sum += length
            self.length_max = max(self.length_max, length)
            self.length_min = length if self.length_min is None else min(self.length_min, length)
            self.lengths[_bin(length)] += 1
            if length <= TOP_VALUE_MAX_CHARS:
                self.top.add(text)
        elif kind in ("integer", "number"):
            self.numbers += 1
            self.number_sum += value
            self.number_min = value if self.number_min is None else min(self.number_min, value)
            self.number_max = value if self.number_max is None else max(self.number_max, value)
            self.top.add(value)
        elif kind == "boolean":
            self.top.add(value)

    def as_dict(self, count: int) -> dict[str, Any]:
        result: dict[str, Any] = {
            "name": self.name,
            "present": self.present,
            "missing": count - self.present,
            "types": dict(sorted(self.types.items())),
        }
        if self.strings:
            last = len(LENGTH_BIN_EDGES) - 1
            result["length"] = {
                "min": self.length_min,
                "max": self.length_max,
                "mean": round(self.length_sum / self.strings, 2),
                "histogram": [
                    {"from": edge, "to": LENGTH_BIN_EDGES[i + 1] if i < last else None, "count": self.lengths[i]}
                    for i, edge in enumerate(LENGTH_BIN_EDGES)
                ],
            }
        if self.numbers:
            result["numeric"] = {
                "min": self.number_min,
                "max": self.number_max,
                "mean": round(self.number_sum / self.numbers, 6),
            }
        top = self.top.top()
        if top:
            result["top_values"] = top
            result["top_values_exact"] = self.top.exact
        return result


def compute_stats(batches: Iterable[list[dict[str, Any]]]) -> dict[str, Any]:
    """Statistics of a stream of record batches (see the module docstring)."""
    count = 0
    fields: dict[str, FieldStats] = {}
    untracked: set[str] = set()
    for batch in batches:
        for record in batch:
            count += 1
            for key, value in record.items():
                stats = fields.get(key)
                if stats is None:
                    if len(fields) >= MAX_FIELDS:
                        if len(untracked) < MAX_FIELDS:
                            untracked.add(key)
                        continue
                    stats = fields[key] = FieldStats(key)
                stats.add(value)
    described = [stats.as_dict(count) for stats in fields.values()]
    return {
        "count": count,
        "fields": described,
        "text_field": _text_field(described),
        "fields_not_described": len(untracked),
    }


def _text_field(fields: list[dict[str, Any]]) -> str | None:
    """The field whose length histogram the dataset page shows: `text` if it holds
    strings, else the string field with the longest values on average."""
    strings = [field for field in fields if "length" in field]
    for field in strings:
        if field["name"] == "text":
            return "text"
    return max(strings, key=lambda field: field["length"]["mean"])["name"] if strings else None
