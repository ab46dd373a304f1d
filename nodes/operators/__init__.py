"""The operator library: the cleaning steps a Data Cleaning node chains.

Start here:

| module | what is in it |
|---|---|
| `base.py` | `Operator` and its kinds (mapper, filter, deduplicator); config validation |
| `registry.py` | the catalogue: `register`, `get`, `all_operators`, `describe`; entry points `datamate.operators` |
| `chain.py` | `Chain`: runs operators over record batches, counters, drop samples, reports, sharding |
| `text.py`, `pii.py`, `filters.py`, `dedup.py`, `fields.py` | the built-in operators |
| `api.py` | `/api/operators/`: the catalogue for the designer |

Tests: `tests/nodes/operators/`. Speed: `bench/data_throughput.py`.
"""
