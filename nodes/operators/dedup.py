"""Deduplicators: exact (64-bit content hashes) and near-duplicate (MinHash LSH).

Memory is the constraint here (see chain.py for how a sharded run splits the state):

- `exact_dedup` keeps one 8-byte blake2b digest per distinct record: a sorted numpy array
  of uint64 plus a small Python set of the most recent keys (`buffer_size`), merged into
  the array when full. That is 8 bytes per distinct record (16 during a merge) instead of
  ~70 for a Python set of ints, and `max_state_mb` caps it: a run that would exceed the
  cap fails with a message saying so rather than taking the worker down. Two different
  texts share a digest with probability ~n²/2⁶⁵ (10⁻⁷ for 2 million records).
- `near_dedup` indexes MinHash signatures in datasketch's MinHashLSH; its state is far
  larger per record (a band key per band), so `max_indexed` bounds it: beyond it, records
  are still checked against the index but no longer added.
"""

from __future__ import annotations

from hashlib import blake2b
from typing import Any

import numpy as np

from nodes.operators.base import Deduplicator, object_schema, text_problem
from nodes.operators.registry import register


class CompactHashSet:
    """A set of 64-bit ints: a sorted uint64 array plus a bounded set of recent additions."""

    def __init__(self, buffer_size: int = 65536, max_bytes: int | None = None):
        self._sorted = np.empty(0, dtype=np.uint64)
        self._recent: set[int] = set()
        self._buffer_size = buffer_size
        self._max_bytes = max_bytes

    def __len__(self) -> int:
        return self._sorted.size + len(self._recent)

    def __contains__(self, key: int) -> bool:
        if key in self._recent:
            return True
        i = int(np.searchsorted(self._sorted, np.uint64(key)))
        return i < self._sorted.size and int(self._sorted[i]) == key

    @property
    def nbytes(self) -> int:
        return self._sorted.nbytes

    def add_new(self, keys: list[int]) -> list[bool]:
        """Add keys; for each, whether it was new (a repeat within `keys` is not)."""
        size = self._sorted.size
        if size:
            # One vectorised lookup for the batch instead of a bisect per key.
            wanted = np.fromiter(keys, dtype=np.uint64, count=len(keys))
            positions = np.minimum(np.searchsorted(self._sorted, wanted), size - 1)
            known = (self._sorted[positions] == wanted).tolist()
        else:
            known = [False] * len(keys)
        recent = self._recent
        new = []
        for key, was_known in zip(keys, known, strict=True):
            if was_known or key in recent:
                new.append(False)
            else:
                recent.add(key)
                new.append(True)
        if len(recent) >= self._buffer_size:
            self.flush()
        return new

    def flush(self) -> None:
        if not self._recent:
            return
        if self._max_bytes is not None and (len(self) * 8) > self._max_bytes:
            raise MemoryError(
                f"exact_dedup state would exceed {self._max_bytes // 2**20} MB ({len(self):,} distinct records): "
                "raise max_state_mb or split the run into more shards"
            )
        added = np.fromiter(self._recent, dtype=np.uint64, count=len(self._recent))
        added.sort()
        # A linear merge (np.insert at sorted positions), not a re-sort of the whole array.
        self._sorted = np.insert(self._sorted, np.searchsorted(self._sorted, added), added)
        self._recent.clear()


def text_key(text: str, ignore_case: bool = False, ignore_whitespace: bool = False) -> int:
    """The 64-bit content key of a text: blake2b, 8-byte digest."""
    if ignore_whitespace:
        text = " ".join(text.split())
    if ignore_case:
        text = text.casefold()
    return int.from_bytes(blake2b(text.encode("utf-8", "surrogatepass"), digest_size=8).digest(), "little")


@register
class ExactDedup(Deduplicator):
    name = "exact_dedup"
    label = "Exact deduplication"
    description = (
        "Keeps the first record of each distinct text (optionally ignoring case and whitespace). Stores an "
        "8-byte hash per distinct text."
    )
    config_schema = object_schema(
        {
            "ignore_case": {"type": "boolean", "default": False},
            "ignore_whitespace": {
                "type": "boolean",
                "default": False,
                "description": "Compare with runs of whitespace collapsed.",
            },
            "buffer_size": {
                "type": "integer",
                "minimum": 1024,
                "maximum": 4194304,
                "default": 65536,
                "description": "Recent keys kept in a hash set before merging into the compact sorted array.",
            },
            "max_state_mb": {
                "type": "integer",
                "minimum": 1,
                "default": 1024,
                "description": "Fail rather than hold more MB of hashes than this (8 bytes per distinct text).",
            },
        }
    )

    def __init__(self, config, text_field="text"):
        super().__init__(config, text_field)
        self.ignore_case = config["ignore_case"]
        self.ignore_whitespace = config["ignore_whitespace"]
        self.seen = CompactHashSet(config["buffer_size"], config["max_state_mb"] * 2**20)

    def key(self, record: dict[str, Any]) -> int | str:
        """The routing key of a record (a sharded run sends equal keys to one shard), or a drop reason."""
        text = record.get(self.text_field)
        if text.__class__ is not str:
            return text_problem(text)
        return text_key(text, self.ignore_case, self.ignore_whitespace)

    def process_batch(self, records):
        field = self.text_field
        dropped = []
        candidates = []
        keys = []
        plain = not (self.ignore_case or self.ignore_whitespace)
        for record in records:
            text = record.get(field)
            if text.__class__ is not str:
                dropped.append((record, text_problem(text)))
                continue
            candidates.append(record)
            if plain:  # text_key() inlined: this loop runs once per record
                keys.append(
                    int.from_bytes(blake2b(text.encode("utf-8", "surrogatepass"), digest_size=8).digest(), "little")
                )
            else:
                keys.append(text_key(text, self.ignore_case, self.ignore_whitespace))
        kept = []
        for record, new in zip(candidates, self.seen.add_new(keys), strict=True):
            if new:
                kept.append(record)
            else:
                dropped.append((record, self.DUPLICATE))
        return kept, dropped


@register
class NearDedup(Deduplicator):
    name = "near_dedup"
    label = "Near-duplicate removal (MinHash LSH)"
    description = (
        "Drops records whose estimated Jaccard similarity to an earlier record is at least threshold, using "
        "MinHash signatures of word or character shingles in a datasketch MinHashLSH index."
    )
    config_schema = object_schema(
        {
            "threshold": {"type": "number", "exclusiveMinimum": 0, "maximum": 1, "default": 0.8},
            "num_perm": {"type": "integer", "minimum": 16, "maximum": 512, "default": 128},
            "shingle": {"enum": ["word", "char"], "default": "word"},
            "shingle_size": {"type": "integer", "minimum": 1, "maximum": 50, "default": 5},
            "lowercase": {"type": "boolean", "default": True},
            "max_indexed": {
                "type": "integer",
                "minimum": 1,
                "default": 1000000,
                "description": "Records kept in the index (bounds memory); later records are checked, not added.",
            },
            "seed": {"type": "integer", "minimum": 0, "default": 1},
        }
    )

    @classmethod
    def check_config(cls, config):
        # datasketch picks bands x rows minimising errors; with too few permutations and an
        # extreme threshold there is no valid split.
        try:
            from datasketch.lsh import _optimal_param

            _optimal_param(config["threshold"], config["num_perm"], 0.5, 0.5)
        except Exception as error:  # pragma: no cover - defensive: datasketch internals
            return [("threshold", f"no LSH parameters for this threshold and num_perm: {error}")]
        return []

    def __init__(self, config, text_field="text"):
        super().__init__(config, text_field)
        from datasketch import MinHash, MinHashLSH

        self._minhash = MinHash
        self.num_perm = config["num_perm"]
        self.seed = config["seed"]
        # Permutations are drawn once and shared by every signature (drawing them is the slow part).
        template = MinHash(num_perm=self.num_perm, seed=self.seed)
        self._permutations = template.permutations
        self._scheme = template.scheme
        self.lsh = MinHashLSH(threshold=config["threshold"], num_perm=self.num_perm)
        self.word_shingles = config["shingle"] == "word"
        self.size = config["shingle_size"]
        self.lowercase = config["lowercase"]
        self.max_indexed = config["max_indexed"]
        self.indexed = 0
        self.metrics = {"not_indexed": 0}

    def shingles(self, text: str) -> set[bytes]:
        if self.lowercase:
            text = text.lower()
        size = self.size
        if self.word_shingles:
            words = text.split()
            if len(words) <= size:
                return {" ".join(words).encode()}
            return {" ".join(words[i : i + size]).encode() for i in range(len(words) - size + 1)}
        text = " ".join(text.split())
        if len(text) <= size:
            return {text.encode()}
        return {text[i : i + size].encode() for i in range(len(text) - size + 1)}

    def signature(self, text: str):
        minhash = self._minhash(
            num_perm=self.num_perm, seed=self.seed, permutations=self._permutations, scheme=self._scheme
        )
        minhash.update_batch(list(self.shingles(text)))
        return minhash

    def process_batch(self, records):
        field = self.text_field
        kept = []
        dropped = []
        for record in records:
            text = record.get(field)
            if text.__class__ is not str:
                dropped.append((record, text_problem(text)))
                continue
            signature = self.signature(text)
            if self.lsh.query(signature):
                dropped.append((record, "near_duplicate"))
                continue
            if self.indexed < self.max_indexed:
                self.lsh.insert(self.indexed, signature, check_duplication=False)
                self.indexed += 1
            else:
                self.metrics["not_indexed"] += 1
            kept.append(record)
        return kept, dropped
