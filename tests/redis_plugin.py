"""Loaded with `-p` so it runs before pytest-django reads the settings.

Unless REDIS_URL is given, the suite gets its own private redis-server (the same embedded
one `manage.py up` uses), so tests never touch a Redis the machine uses for anything else.
"""

import atexit
import os
from pathlib import Path
import tempfile

if not os.environ.get("REDIS_URL"):
    from datamate.embedded_redis import start_embedded_redis

    _redis = start_embedded_redis(Path(tempfile.mkdtemp(prefix="datamate-test-redis-")))
    os.environ["REDIS_URL"] = _redis.url
    atexit.register(_redis.stop)
