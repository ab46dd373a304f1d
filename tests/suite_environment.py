"""Loaded with `-p` so it runs before pytest-django reads the settings.

Unless REDIS_URL is given, the suite gets its own private redis-server (the same embedded
one `manage.py up` uses), so tests never touch a Redis the machine uses for anything else.
The engine tests' node type (`tests.engine.node_types`) is registered in this process and
in the worker processes the tests start.
"""

import atexit
import os
from pathlib import Path
import shutil
import tempfile

os.environ.setdefault("DATAMATE_NODE_TYPE_MODULES", "tests.engine.node_types")
# Short engine timings, so tests of lost workers and timers finish in seconds.
os.environ.setdefault("DATAMATE_HEARTBEAT_SECONDS", "0.5")
os.environ.setdefault("DATAMATE_STALE_AFTER_SECONDS", "3")
os.environ.setdefault("DATAMATE_SWEEP_SECONDS", "1")

if not os.environ.get("REDIS_URL"):
    from datamate.embedded_redis import start_embedded_redis

    _redis = start_embedded_redis(Path(tempfile.mkdtemp(prefix="datamate-test-redis-")))
    os.environ["REDIS_URL"] = _redis.url
    atexit.register(_redis.stop)

# Files (artifacts, dataset versions) in a folder of the suite's own: run ids start again at
# 1 in every test database, so files an earlier suite left in var/media would be taken for
# the new runs' (`make test` twice in a row failed the "leaves nothing" tests).
if not os.environ.get("DATAMATE_STORAGE_ROOT"):
    _media = tempfile.mkdtemp(prefix="datamate-test-media-")
    os.environ["DATAMATE_STORAGE_ROOT"] = _media
    atexit.register(shutil.rmtree, _media, True)

# Data Collection in the worker processes: the tests' HTTP servers listen on 127.0.0.1 (any
# other private address stays refused), and SQL sources are a SQLite file in a private folder
# and the local PostgreSQL (tests/engine/test_collection.py).
os.environ.setdefault("DATAMATE_COLLECT_ALLOWED_HOSTS", "*,127.0.0.1")
# The tests' chat server (tests/chat_server.py) listens on 127.0.0.1 too.
os.environ.setdefault("DATAMATE_LLM_ALLOWED_HOSTS", "*,127.0.0.1")
_sql_dir = Path(tempfile.mkdtemp(prefix="datamate-test-sql-"))
atexit.register(shutil.rmtree, _sql_dir, True)
os.environ.setdefault(
    "DATAMATE_SQL_CONNECTIONS",
    f"collect=sqlite:///{_sql_dir / 'collect.sqlite3'};pg=postgresql://postgres@127.0.0.1:5432/postgres",
)
