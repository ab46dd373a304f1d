"""Settings, all driven by the environment (see the configuration table in README.md).

Zero configuration gives the embedded defaults: SQLite under var/ and the private
redis-server that `manage.py up` starts. Production sets DATABASE_URL and REDIS_URL.
"""

from pathlib import Path

import environ
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()

VAR_DIR = Path(env.str("DATAMATE_VAR_DIR", default=str(BASE_DIR / "var"))).resolve()
VAR_DIR.mkdir(parents=True, exist_ok=True)

from datamate.runtime_files import persistent_secret_key, read_embedded_redis_url  # noqa: E402

DEBUG = env.bool("DEBUG", default=False)
SECRET_KEY = env.str("SECRET_KEY", default="") or persistent_secret_key(VAR_DIR)
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["localhost", "127.0.0.1", "[::1]"])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework.authtoken",
    "drf_spectacular",
    "simple_history",
    "django_celery_beat",
    "channels",
    "datamate",
    "nodes",
    "datasets",
    "pipelines",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "simple_history.middleware.HistoryRequestMiddleware",
]

ROOT_URLCONF = "datamate.urls"
WSGI_APPLICATION = "datamate.wsgi.application"
ASGI_APPLICATION = "datamate.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# --- database -----------------------------------------------------------------------
DATABASES = {
    "default": env.db_url("DATABASE_URL", default=f"sqlite:///{VAR_DIR / 'db.sqlite3'}"),
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # WAL lets web, workers and beat read while one writes; IMMEDIATE takes the write lock
    # at BEGIN so two writers queue on the busy timeout instead of failing mid-transaction.
    DATABASES["default"]["OPTIONS"] = {
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        "transaction_mode": "IMMEDIATE",
        "timeout": 30,
    }
    # A file, not :memory:, so worker and server subprocesses of the tests share it.
    DATABASES["default"]["TEST"] = {"NAME": str(VAR_DIR / "test.sqlite3")}
elif DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
    # Lets psycopg prepare a statement on its second use on a connection. Only cursors that
    # bind on the server use it: the engine's (pipelines/engine/statements.py), not the ORM's.
    # Behind PgBouncer in transaction mode, that needs PgBouncer 1.21+ (max_prepared_statements).
    DATABASES["default"].setdefault("OPTIONS", {}).setdefault("prepare_threshold", 1)
# Keep connections open between requests and tasks (checked before reuse): opening one
# costs more than a whole fast node on PostgreSQL.
DATABASES["default"]["CONN_MAX_AGE"] = env.int("CONN_MAX_AGE", default=300)
DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- redis: broker, channel layer ---------------------------------------------------
# Explicit REDIS_URL wins; else the private redis-server that `manage.py up` is running.
REDIS_URL = env.str("REDIS_URL", default="") or read_embedded_redis_url(VAR_DIR)

CELERY_BROKER_URL = REDIS_URL or "redis://127.0.0.1:6379/0"
if CELERY_BROKER_URL.startswith(("redis://", "rediss://")):
    CELERY_BROKER_TRANSPORT = "datamate.broker:Transport"  # kombu's, minus a client per message
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TIMEZONE = "UTC"
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
# A message is acknowledged after its task ran, so a worker that dies loses nothing; the
# engine's conditional claim makes the redelivery harmless.
CELERY_TASK_ACKS_LATE = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_IGNORE_RESULT = True
# Celery's Django fixup closes the database connection after every task unless told to reuse it.
CELERY_DB_REUSE_MAX = 1000

# --- engine -------------------------------------------------------------------------
#: How often a running node run stamps its heartbeat, and when a silent one counts as lost.
DATAMATE_HEARTBEAT_SECONDS = env.float("DATAMATE_HEARTBEAT_SECONDS", default=5.0)
DATAMATE_STALE_AFTER_SECONDS = env.float("DATAMATE_STALE_AFTER_SECONDS", default=30.0)
#: Progress is stored and published at most this often per node run.
DATAMATE_PROGRESS_INTERVAL_SECONDS = 0.5
#: Period of the sweeper (due timers, lost workers, lost messages), run by celery beat.
DATAMATE_SWEEP_SECONDS = env.float("DATAMATE_SWEEP_SECONDS", default=5.0)
#: Sharded data nodes (`shards: auto`): one shard per this many input records, at most this many shards.
DATAMATE_SHARD_RECORDS = env.int("DATAMATE_SHARD_RECORDS", default=50_000)
DATAMATE_MAX_SHARDS = env.int("DATAMATE_MAX_SHARDS", default=8)
#: Extra modules that register node types (besides the `datamate.node_types` entry points).
DATAMATE_NODE_TYPE_MODULES = env.list("DATAMATE_NODE_TYPE_MODULES", default=[])
CELERY_BEAT_SCHEDULE = {
    "datamate-sweep": {"task": "pipelines.tasks.sweep", "schedule": DATAMATE_SWEEP_SECONDS},
}

# Redis pub/sub: one PUBLISH per group message. Live events need no storage (a client that
# misses some gets a fresh snapshot), so the cheaper layer serves best.
CHANNEL_LAYERS = {
    "default": {
        "BACKEND": "channels_redis.pubsub.RedisPubSubChannelLayer",
        # A pooled connection that outlived a Redis restart fails once: retry on a new one,
        # or the websocket that made the call is closed with 1011.
        "CONFIG": {"hosts": [{"address": CELERY_BROKER_URL, "retry": Retry(ExponentialBackoff(cap=1.0, base=0.1), 3)}]},
    }
}

# --- auth, i18n, files --------------------------------------------------------------
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
# Our own login page: the admin's refuses users who are not staff.
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "pages:pipeline-list"
LOGOUT_REDIRECT_URL = "login"

LANGUAGE_CODE = "en-us"
TIME_ZONE = env.str("TIME_ZONE", default="UTC")
USE_I18N = True
USE_TZ = True

STATIC_URL = "/static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = VAR_DIR / "staticfiles"
STATIC_ROOT.mkdir(exist_ok=True)
# Serve straight from the app and project static folders: no collectstatic step needed.
WHITENOISE_USE_FINDERS = True

MEDIA_ROOT = Path(env.str("DATAMATE_STORAGE_ROOT", default=str(VAR_DIR / "media")))
MEDIA_URL = "/media/"
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}

# --- API ----------------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        # Token first: a failed or missing login then answers 401 with WWW-Authenticate.
        "rest_framework.authentication.TokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_PAGINATION_CLASS": "rest_framework.pagination.PageNumberPagination",
    "PAGE_SIZE": 50,
    "EXCEPTION_HANDLER": "datamate.api_errors.exception_handler",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "DataMate Pipelines API",
    "DESCRIPTION": "Design, version, template and run data pipelines for LLM training data.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "COMPONENT_SPLIT_REQUEST": True,
    # 3.1 is JSON Schema 2020-12, so node config schemas are published as they are.
    "OAS_VERSION": "3.1.0",
}

# A pipeline document larger than this is refused before parsing (HTTP 413).
DATA_UPLOAD_MAX_MEMORY_SIZE = env.int("DATA_UPLOAD_MAX_MEMORY_SIZE", default=5 * 1024 * 1024)

# --- datasets -----------------------------------------------------------------------
#: The largest dataset file upload (streamed to a temp file, never held in memory): HTTP 413 above it.
DATAMATE_MAX_UPLOAD_BYTES = env.int("DATAMATE_MAX_UPLOAD_BYTES", default=4 * 1024**3)
#: Folders on the server that datasets may be imported from by path (nothing outside them).
DATAMATE_IMPORT_ROOTS = env.list("DATAMATE_IMPORT_ROOTS", default=[str(VAR_DIR / "imports")])

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="INFO")},
}

# --- LLM synthesis and annotation, stored secrets -----------------------------------
#: Environment variables a node may name as its API key (`api_key_env`). Any other name is
#: refused, so a node cannot send DATABASE_URL or SECRET_KEY to a URL of its choosing.
DATAMATE_LLM_KEY_ENV_VARS = env.list("DATAMATE_LLM_KEY_ENV_VARS", default=["OPENAI_API_KEY"])
#: The only hosts (of `base_url`) such a server-wide key is sent to: any author could
#: otherwise send it to a host of their own.
DATAMATE_LLM_KEY_HOSTS = [host.lower() for host in env.list("DATAMATE_LLM_KEY_HOSTS", default=["api.openai.com"])]
#: Hosts a node's `base_url` may name, in the grammar of DATAMATE_COLLECT_ALLOWED_HOSTS: any
#: public host by default; a model server on loopback or a private network (Ollama, vLLM)
#: only once its address or network is listed, e.g. `*,127.0.0.1`.
DATAMATE_LLM_ALLOWED_HOSTS = env.list("DATAMATE_LLM_ALLOWED_HOSTS", default=["*"])
#: Key material for encrypting stored secrets (nodes/secrets.py); SECRET_KEY when empty.
#: Changing it makes the stored secrets unreadable: they must be set again.
DATAMATE_SECRETS_KEY = env.str("DATAMATE_SECRETS_KEY", default="")

# --- data collection: HTTP(S) and SQL sources (nodes/fetch.py, nodes/sql.py) ----------
#: Hosts Data Collection may fetch from: names, `*.domain`, `*`, and IP addresses or networks
#: (CIDR). Loopback, private, link-local … addresses are refused unless a network covers them.
DATAMATE_COLLECT_ALLOWED_HOSTS = env.list("DATAMATE_COLLECT_ALLOWED_HOSTS", default=[])
#: The largest body fetched per URL (also the most a node's `max_bytes` may ask for).
DATAMATE_COLLECT_MAX_BYTES = env.int("DATAMATE_COLLECT_MAX_BYTES", default=1024**3)
#: Default time per URL (connect, redirects, download) and per SQL query, unless the node says.
DATAMATE_COLLECT_TIMEOUT_SECONDS = env.float("DATAMATE_COLLECT_TIMEOUT_SECONDS", default=300.0)
#: Named databases Data Collection may query (read-only): "name=url;name2=url", SQLAlchemy URLs.
DATAMATE_SQL_CONNECTIONS = env.str("DATAMATE_SQL_CONNECTIONS", default="")
