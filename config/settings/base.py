"""Settings shared by every environment, read from environment variables.

With no DATABASE_URL / CELERY_BROKER_URL / REDIS_URL the project runs "embedded":
SQLite, kombu's filesystem broker and a file-based cache under ``var/``, so the demo
needs no services. Setting those variables switches to PostgreSQL and Redis.
"""

from __future__ import annotations

from pathlib import Path

from django.core.exceptions import ImproperlyConfigured

from config.env import Env, process_role
from config.queues import Queue

env = Env()

BASE_DIR = Path(__file__).resolve().parent.parent.parent
VAR_DIR = env.path("FIELDRELAY_VAR_DIR", BASE_DIR / "var")

DEBUG = env.bool("DEBUG", False)
# A development-only key; production.py refuses to start without SECRET_KEY.
SECRET_KEY = env.str("SECRET_KEY", "dev-only-insecure-key-do-not-use-in-production")
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", ["localhost", "127.0.0.1", "[::1]"])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_celery_beat",
    "django_celery_results",
    "config",
    "devices",
    "seismographs",
    "captures",
    "campaigns",
    "monitoring",
    "audit",
    # Last: its post_migrate seeds the roles once every other app's permissions exist.
    "accounts",
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
    "audit.middleware.AuditMiddleware",
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"
ASGI_APPLICATION = "config.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
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

# --- database ------------------------------------------------------------------------
EMBEDDED_DATABASE_URL = f"sqlite:///{VAR_DIR / 'fieldrelay.sqlite3'}"
DATABASES = {"default": env.database("DATABASE_URL", EMBEDDED_DATABASE_URL)}
if DATABASES["default"]["ENGINE"].endswith("sqlite3"):
    # Several processes share the demo database: WAL and immediate transactions keep
    # writers from failing with "database is locked".
    DATABASES["default"]["OPTIONS"].update(
        {"init_command": "PRAGMA journal_mode=WAL;", "transaction_mode": "IMMEDIATE"}
    )
if DATABASES["default"]["ENGINE"].endswith("postgresql"):
    # pg_stat_activity names each process's connections after its role (read off the
    # command line, e.g. fieldrelay-worker-snmp; FIELDRELAY_ROLE overrides it).
    DATABASES["default"]["OPTIONS"]["application_name"] = f"fieldrelay-{process_role()}"
    # The connection budget: one pool per process, at most DB_POOL_MAX_SIZE server connections
    # however many threads it runs (a threads worker's 32 share them; a thread that finds
    # them all busy waits up to DB_POOL_TIMEOUT_S, then its query fails, saying so). A
    # single-threaded process (prefork child, gunicorn sync worker) uses one. 0: no pool.
    DB_POOL_MAX_SIZE = env.int("DB_POOL_MAX_SIZE", 4, minimum=0, maximum=100)
    DB_POOL_TIMEOUT_S = env.float("DB_POOL_TIMEOUT_S", 30.0, minimum=0.1)
    if DB_POOL_MAX_SIZE:
        DATABASES["default"]["CONN_MAX_AGE"] = 0  # the pool keeps connections, not Django
        DATABASES["default"]["OPTIONS"]["pool"] = {
            "min_size": 0,  # opened on demand: a single-threaded process keeps one
            "max_size": DB_POOL_MAX_SIZE,
            "timeout": DB_POOL_TIMEOUT_S,
            "max_idle": 300,
        }
    # Prepared statements: PostgreSQL parses and plans a statement once per connection
    # instead of at every run (a capture runs the same few dozen statements; a tenth of
    # the machine's CPU per campaign modem, docs/benchmarks.md). They need server-side
    # binding. 0 turns both off, for a PgBouncer in transaction mode, which cannot keep a
    # connection's prepared statements.
    DB_PREPARE_THRESHOLD = env.int("DB_PREPARE_THRESHOLD", 5, minimum=0, maximum=1000)
    if DB_PREPARE_THRESHOLD:
        DATABASES["default"]["OPTIONS"]["server_side_binding"] = True
        DATABASES["default"]["OPTIONS"]["prepare_threshold"] = DB_PREPARE_THRESHOLD
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- cache (live, shared, short-lived state) -------------------------------------------
REDIS_URL = env.url("REDIS_URL", "", ("redis", "rediss")) if env.is_set("REDIS_URL") else ""
if REDIS_URL:
    CACHES = {
        "default": {
            "BACKEND": "config.cache.PrefixedRedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": env.str("CACHE_KEY_PREFIX", "fieldrelay"),
            "OPTIONS": {"socket_connect_timeout": 2, "socket_timeout": 5},
        }
    }
else:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.filebased.FileBasedCache",
            "LOCATION": str(VAR_DIR / "cache"),
        }
    }

# --- celery ----------------------------------------------------------------------------
EMBEDDED_BROKER_DIR = VAR_DIR / "broker"
CELERY_BROKER_URL = env.url(
    "CELERY_BROKER_URL", "filesystem://", ("redis", "rediss", "filesystem", "memory")
)
CELERY_TASK_TIME_LIMIT = env.int("CELERY_TASK_TIME_LIMIT", 600, minimum=1)
CELERY_TASK_SOFT_TIME_LIMIT = env.int("CELERY_TASK_SOFT_TIME_LIMIT", 540, minimum=1)
if CELERY_TASK_SOFT_TIME_LIMIT >= CELERY_TASK_TIME_LIMIT:
    raise ImproperlyConfigured(
        f"CELERY_TASK_SOFT_TIME_LIMIT ({CELERY_TASK_SOFT_TIME_LIMIT}) must be below "
        f"CELERY_TASK_TIME_LIMIT ({CELERY_TASK_TIME_LIMIT}): the soft limit lets a task clean up"
    )
# Longer than any task or retry countdown, so a late-acked message is never redelivered
# while it is still running (the Redis transport's default is one hour).
CELERY_VISIBILITY_TIMEOUT = max(2 * CELERY_TASK_TIME_LIMIT, 7200)
if CELERY_BROKER_URL.startswith("filesystem"):
    # The filesystem transport needs its folders before any process connects.
    for _folder in ("queue", "control"):
        (EMBEDDED_BROKER_DIR / _folder).mkdir(parents=True, exist_ok=True)
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(EMBEDDED_BROKER_DIR / "queue"),
        "data_folder_out": str(EMBEDDED_BROKER_DIR / "queue"),
        "control_folder": str(EMBEDDED_BROKER_DIR / "control"),
        "store_processed": False,
        "polling_interval": 0.1,
    }
else:
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "visibility_timeout": CELERY_VISIBILITY_TIMEOUT,
        "socket_connect_timeout": 5,
        "socket_timeout": 10,
    }
if CELERY_BROKER_URL.startswith("redis://"):
    CELERY_BROKER_TRANSPORT = "config.broker:Transport"  # kombu's, one client per channel
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_BROKER_CONNECTION_TIMEOUT = 5
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_TIMEZONE = "UTC"
CELERY_TASK_DEFAULT_QUEUE = Queue.DEFAULT.value
CELERY_TASK_ROUTES = ["config.queues.route_task"]  # each task declares its queue
# Device tasks must survive a worker dying mid-transfer: ack after the work, fetch one
# message at a time. Every task is written to be safe to run twice.
CELERY_TASK_ACKS_LATE = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_REJECT_ON_WORKER_LOST = False
CELERY_WORKER_CANCEL_LONG_RUNNING_TASKS_ON_CONNECTION_LOSS = True
# Our own rows hold outcomes; tasks that a client polls opt in with ignore_result=False.
CELERY_TASK_IGNORE_RESULT = True
CELERY_RESULT_BACKEND = "django-db"
CELERY_RESULT_EXTENDED = True
CELERY_RESULT_EXPIRES = 86400
# Celery's Django fixup closes every database connection after every task unless this is
# set, so each task paid a new PostgreSQL backend (fork + auth, the biggest single cost of
# a PNM capture). config.celery_app applies CONN_MAX_AGE around tasks instead.
CELERY_DB_REUSE_MAX = 1_000_000_000
# Task events cost a Redis PUBLISH each (three per task, the largest share of a worker's
# main process at PNM rates). Flower switches workers' events on by itself while it runs
# (its enable_events broadcast), so nobody pays for them when nobody watches. Set
# CELERY_TASK_EVENTS=true to have them always, "task-sent" included.
CELERY_WORKER_SEND_TASK_EVENTS = env.bool("CELERY_TASK_EVENTS", False)
CELERY_TASK_SEND_SENT_EVENT = CELERY_WORKER_SEND_TASK_EVENTS
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
CELERY_BEAT_SCHEDULER = "config.beat:Scheduler"
# Left empty on purpose: default schedules are seeded by config.schedules via a data
# migration, so that operators' edits in the admin survive restarts.
CELERY_BEAT_SCHEDULE: dict = {}

# --- REST API ----------------------------------------------------------------------------
# Rates "N/period" (period: s, m, h, d, optionally with a count: "1/10s"), counted in the
# 'default' cache (Redis when REDIS_URL is set) so every web process shares them.
THROTTLE_RATES: dict[str, str] = {
    "seismo_force": env.str("THROTTLE_SEISMO_FORCE", "1/10s"),
    "operation_start": env.str("THROTTLE_OPERATION_START", "6/m"),
    "sample_post": env.str("THROTTLE_SAMPLE_POST", "600/m"),
}
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "accounts.authentication.ApiTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    # The one permission layer: each view declares per action what it needs (accounts).
    "DEFAULT_PERMISSION_CLASSES": ["accounts.permissions.ActionPermission"],
    # OPTIONS would describe write forms to anyone authenticated: answered 405 instead.
    "DEFAULT_METADATA_CLASS": None,
    "DEFAULT_FILTER_BACKENDS": ["config.api.StrictFilterBackend"],
    # JSON only: one request format, documented exactly (form posts read a blank field
    # as an absent one).
    "DEFAULT_PARSER_CLASSES": ["rest_framework.parsers.JSONParser"],
    "DEFAULT_SCHEMA_CLASS": "config.schema.AutoSchema",
    "DEFAULT_PAGINATION_CLASS": "config.api.LimitOffsetPagination",
    "PAGE_SIZE": 100,
    "EXCEPTION_HANDLER": "config.api.exception_handler",
    "DEFAULT_THROTTLE_RATES": THROTTLE_RATES,
}
SPECTACULAR_SETTINGS = {
    "TITLE": "fieldrelay API",
    "DESCRIPTION": "PNM captures, seismograph data and instrument series from field devices.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    # The schema and its UI are for our users too: /health/ is the only public page
    # (config.urls declares their rule: any token with the read scope).
    "SERVE_PERMISSIONS": ["accounts.permissions.ActionPermission"],
    # Several fields are named "test": a file's test type, a trigger test, an operation family.
    "ENUM_NAME_OVERRIDES": {
        "PnmFileTestEnum": "captures.models.PnmTestType",
        "PnmTriggerTestEnum": "captures.models.TRIGGER_TESTS",
        "OperationFamilyEnum": "captures.api.serializers.MULTI_NAMES",
    },
}

# --- audit -------------------------------------------------------------------------------
# Proxies (their addresses) whose X-Forwarded-For names the client; empty: REMOTE_ADDR only.
AUDIT_TRUSTED_PROXIES = env.list("AUDIT_TRUSTED_PROXIES")

# --- auth, i18n, static ------------------------------------------------------------------
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "/admin/login/"
LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True
STATIC_URL = "static/"
STATIC_ROOT: Path | None = env.path("STATIC_ROOT", VAR_DIR / "static")

# --- fieldrelay ----------------------------------------------------------------------------
# Where compressed captures and other received files are kept for good.
FIELDRELAY_STORAGE_ROOT = env.path("FIELDRELAY_STORAGE_ROOT", VAR_DIR / "storage")
# Where receivers write files in flight, before a worker stages them.
FIELDRELAY_SPOOL_DIR = env.path("FIELDRELAY_SPOOL_DIR", VAR_DIR / "spool")

LOG_LEVEL = env.choice("LOG_LEVEL", "INFO", ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"))
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"},
    },
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {
        # tftpy logs every packet at INFO; that noise costs throughput.
        "tftpy": {"level": "WARNING"},
        "pysnmp": {"level": "WARNING"},
    },
}
# Each reachability probe of /health/ gives up after this many seconds.
HEALTH_CHECK_TIMEOUT_S = env.float("HEALTH_CHECK_TIMEOUT_S", 2.0, minimum=0.1, maximum=60)

# --- captures ------------------------------------------------------------------------------
# The TFTP receiver listens here; modems are told to upload to PNM_TFTP_DEST_HOST (the
# address they can reach, which differs from 0.0.0.0), path PNM_TFTP_DEST_PATH.
PNM_TFTP_LISTEN_HOST = env.str("PNM_TFTP_LISTEN_HOST", "127.0.0.1")
PNM_TFTP_LISTEN_PORT = env.int("PNM_TFTP_LISTEN_PORT", 6969, minimum=0, maximum=65535)
PNM_TFTP_DEST_HOST = env.str("PNM_TFTP_DEST_HOST", "127.0.0.1")
PNM_TFTP_DEST_PATH = env.str("PNM_TFTP_DEST_PATH", "")
PNM_MAX_UPLOAD_BYTES = env.int("PNM_MAX_UPLOAD_BYTES", 4 * 1024 * 1024, minimum=1024)
# The receiver waits this long after a complete upload for others to share its staging
# task (one task and one transaction per batch instead of per file).
PNM_RECEIVER_LINGER_S = env.float("PNM_RECEIVER_LINGER_S", 0.02, minimum=0, maximum=1)
PNM_ZSTD_LEVEL = env.int("PNM_ZSTD_LEVEL", 3, minimum=1, maximum=22)
# SNMP: per-request timeout and retries; the capture must reach sampleReady within
# PNM_MEASURE_DEADLINE_S and its upload arrive within PNM_UPLOAD_DEADLINE_S after that.
PNM_SNMP_TIMEOUT_S = env.float("PNM_SNMP_TIMEOUT_S", 1.0, minimum=0.05, maximum=60)
PNM_SNMP_RETRIES = env.int("PNM_SNMP_RETRIES", 1, minimum=0, maximum=10)
PNM_MEASURE_DEADLINE_S = env.float("PNM_MEASURE_DEADLINE_S", 30.0, minimum=1)
PNM_UPLOAD_DEADLINE_S = env.float("PNM_UPLOAD_DEADLINE_S", 30.0, minimum=1)
# After this many failed ticks in a row the operation is failed.
PNM_MAX_CONSECUTIVE_FAILURES = env.int("PNM_MAX_CONSECUTIVE_FAILURES", 3, minimum=1)
# At most this many captures in flight at once on one CMTS (the modems' ``cmts`` field);
# ticks beyond it are counted missed. 0: no cap. Modems without a CMTS are not capped.
PNM_MAX_IN_FLIGHT_PER_CMTS = env.int("PNM_MAX_IN_FLIGHT_PER_CMTS", 32, minimum=0, maximum=10_000)
# Campaigns: the most captures one campaign may keep in flight (its own max_in_flight is
# refused above it), and the most modems an explicit target may list (use a filter beyond).
CAMPAIGN_MAX_IN_FLIGHT = env.int("CAMPAIGN_MAX_IN_FLIGHT", 500, minimum=1, maximum=100_000)
CAMPAIGN_MAX_LISTED_MODEMS = 10_000
# The tick dispatcher (captures.dispatch), every second: it keeps about PNM_DISPATCH_QUEUE_S
# seconds of work (at the rate the workers drain it) waiting in the snmp queue, never less
# room than PNM_DISPATCH_MIN_QUEUED; due ticks beyond it wait in PostgreSQL, and one whose
# time passes there is counted missed. At most PNM_DISPATCH_BATCH ticks per pass (10,000:
# a pass reads their keys in one statement, within its 65,535 parameters).
PNM_DISPATCH_QUEUE_S = env.float("PNM_DISPATCH_QUEUE_S", 1.5, minimum=0.1, maximum=60)
PNM_DISPATCH_MIN_QUEUED = env.int("PNM_DISPATCH_MIN_QUEUED", 64, minimum=1, maximum=100_000)
PNM_DISPATCH_BATCH = env.int("PNM_DISPATCH_BATCH", 2000, minimum=1, maximum=10_000)
# The dispatcher sends up to PNM_TICKS_PER_MESSAGE ticks in one trigger message (a message
# costs a worker about as much CPU as the rest of a tick's setup); each snmp worker process
# runs at most PNM_TICK_THREADS ticks at once, each on a thread of its own, so a silent
# modem holds up no other tick of its message.
PNM_TICKS_PER_MESSAGE = env.int("PNM_TICKS_PER_MESSAGE", 8, minimum=1, maximum=100)
PNM_TICK_THREADS = env.int("PNM_TICK_THREADS", 32, minimum=1, maximum=1024)
PNM_POLL_INTERVAL_S = env.float("PNM_POLL_INTERVAL_S", 1.0, minimum=0.05)
# A capture's per-modem lease (and CMTS slot) lives this long unless its poll chain renews
# it (every poll): a worker killed mid-measurement frees its modem after at most this, and
# the sweeper then settles the capture it had in flight as failed (WorkerLost).
PNM_LEASE_TTL_S = env.float("PNM_LEASE_TTL_S", 10.0, minimum=0.5, maximum=3600)
if PNM_LEASE_TTL_S < 3 * PNM_POLL_INTERVAL_S:
    raise ImproperlyConfigured(
        f"PNM_LEASE_TTL_S ({PNM_LEASE_TTL_S}) must be at least 3 x PNM_POLL_INTERVAL_S "
        f"({PNM_POLL_INTERVAL_S}): the polls that renew the lease run once per interval"
    )
# Between two renewals pass one poll interval and one SNMP request with its retries.
_ONE_POLL_S = PNM_POLL_INTERVAL_S + PNM_SNMP_TIMEOUT_S * (PNM_SNMP_RETRIES + 1)
if PNM_LEASE_TTL_S <= _ONE_POLL_S:
    raise ImproperlyConfigured(
        f"PNM_LEASE_TTL_S ({PNM_LEASE_TTL_S}) must exceed PNM_POLL_INTERVAL_S + "
        f"PNM_SNMP_TIMEOUT_S x (PNM_SNMP_RETRIES + 1) ({_ONE_POLL_S:g} s): a poll whose SNMP "
        "request is slow would otherwise lose its own lease"
    )
# With the snmp worker on the threads pool, a trigger task may wait this long for its file
# before handing over to poll tasks: a capture whose file comes within it costs one task
# instead of one per poll (captures.arrivals). A waiting thread costs no CPU, but holds its
# worker slot: size the pool's threads for it. 0 = never wait, as a prefork worker should
# (its processes would be blocked). Needs the Redis cache. At most 4 s (below the cache's
# socket timeout), and the lease taken at the trigger must outlive the wait and one poll.
PNM_ARRIVAL_WAIT_S = env.float("PNM_ARRIVAL_WAIT_S", 0.0, minimum=0, maximum=4)
if PNM_ARRIVAL_WAIT_S + _ONE_POLL_S >= PNM_LEASE_TTL_S:
    raise ImproperlyConfigured(
        f"PNM_ARRIVAL_WAIT_S ({PNM_ARRIVAL_WAIT_S}) + PNM_POLL_INTERVAL_S + PNM_SNMP_TIMEOUT_S x "
        f"(PNM_SNMP_RETRIES + 1) must stay below PNM_LEASE_TTL_S ({PNM_LEASE_TTL_S}): the "
        "modem's lease would run out while its trigger waits for the file"
    )

# --- monitoring ---------------------------------------------------------------------------
# Full-rate samples are kept this long; older data keeps the first sample per interval.
MONITORING_FULL_RATE_WINDOW_S = env.int("MONITORING_FULL_RATE_WINDOW_S", 14 * 86400, minimum=60)
MONITORING_SNAPSHOT_INTERVAL_S = env.int("MONITORING_SNAPSHOT_INTERVAL_S", 60, minimum=1)
# Ingest rejects samples stamped further than this ahead of the server clock.
MONITORING_MAX_FUTURE_S = env.int("MONITORING_MAX_FUTURE_S", 300, minimum=0)
MONITORING_MAX_BATCH_BYTES = env.int("MONITORING_MAX_BATCH_BYTES", 32 * 1024 * 1024, minimum=1024)
# Day partitions (PostgreSQL) are created this many days ahead by the flush.
MONITORING_PARTITIONS_AHEAD_DAYS = env.int("MONITORING_PARTITIONS_AHEAD_DAYS", 2, minimum=1)
# The flush gives up (and retries next minute) when a lock is not granted this fast.
MONITORING_FLUSH_LOCK_TIMEOUT_S = env.float("MONITORING_FLUSH_LOCK_TIMEOUT_S", 5.0, minimum=0.1)
# Series over ranges up to this long read raw samples; longer ones read the snapshot table.
MONITORING_SERIES_RAW_MAX_S = env.int("MONITORING_SERIES_RAW_MAX_S", 3 * 3600, minimum=60)
MONITORING_SERIES_MAX_POINTS = env.int("MONITORING_SERIES_MAX_POINTS", 20_000, minimum=4)
# Closed ranges are cached server-side this long (keyed by the retention watermark too).
MONITORING_SERIES_CACHE_S = env.int("MONITORING_SERIES_CACHE_S", 600, minimum=0)
# The stream listener (manage.py ingest_listener).
MONITORING_LISTENER_HOST = env.str("MONITORING_LISTENER_HOST", "127.0.0.1")
MONITORING_LISTENER_PORT = env.int("MONITORING_LISTENER_PORT", 8094, minimum=0, maximum=65535)
MONITORING_LISTENER_BATCH_S = env.float(
    "MONITORING_LISTENER_BATCH_S", 1.0, minimum=0.01, maximum=60
)
MONITORING_LISTENER_DUMP = env.str("MONITORING_LISTENER_DUMP", "")
# Access control: the first line of a connection carries fieldrelay_token=<token> (a comment
# line or a tag); connections from outside the allow-list (CIDRs) are refused at once. A
# listener on a non-loopback address refuses to start with neither set.
MONITORING_LISTENER_TOKEN = env.token("MONITORING_LISTENER_TOKEN")
MONITORING_LISTENER_ALLOW = env.networks("MONITORING_LISTENER_ALLOW")
# Limits that keep one client from taking the listener down: open connections; seconds
# without data before a connection is closed; malformed lines per connection before it is;
# bytes per second one connection may send before it is not read for a while (0: no limit).
MONITORING_LISTENER_MAX_CONNECTIONS = env.int("MONITORING_LISTENER_MAX_CONNECTIONS", 256, minimum=1)
MONITORING_LISTENER_IDLE_TIMEOUT_S = env.int("MONITORING_LISTENER_IDLE_TIMEOUT_S", 120, minimum=1)
MONITORING_LISTENER_MAX_BAD_LINES = env.int("MONITORING_LISTENER_MAX_BAD_LINES", 100, minimum=0)
MONITORING_LISTENER_MAX_BYTES_PER_S = env.int(
    "MONITORING_LISTENER_MAX_BYTES_PER_S", 2 * 1024 * 1024, minimum=0
)

# --- seismographs ------------------------------------------------------------------------------
# The API waits at most this long for a unit before answering 202 with a task to poll.
SEISMO_API_WAIT_S = env.float("SEISMO_API_WAIT_S", 3.0, minimum=0)
# The event list is re-probed (count + stamp check) when older than this.
SEISMO_EVENTS_TTL_S = env.float("SEISMO_EVENTS_TTL_S", 60.0, minimum=0)
SEISMO_MONITOR_TTL_S = env.int("SEISMO_MONITOR_TTL_S", 30, minimum=1)
# How long an unconfirmed start/stop monitoring is shown as pending (start takes ~40 s).
SEISMO_MONITOR_PENDING_S = env.int("SEISMO_MONITOR_PENDING_S", 90, minimum=1)
# Negative cache: no dial for this long after a failure; longer once the unit is offline.
SEISMO_NEGATIVE_TTL_S = env.int("SEISMO_NEGATIVE_TTL_S", 15, minimum=1)
SEISMO_OFFLINE_AFTER = env.int("SEISMO_OFFLINE_AFTER", 3, minimum=1)
SEISMO_OFFLINE_RETRY_S = env.int("SEISMO_OFFLINE_RETRY_S", 300, minimum=1)
# One session per unit. The lock outlives any session (a task is killed at its hard time
# limit, a 60 s record at 4096 sps takes ~500 s at 38400 baud); a queued task waits this
# long for a busy unit.
SEISMO_LOCK_TTL_S = env.int("SEISMO_LOCK_TTL_S", CELERY_TASK_TIME_LIMIT + 60, minimum=10)
SEISMO_LOCK_WAIT_S = env.float("SEISMO_LOCK_WAIT_S", 120.0, minimum=0)
# A write (config, start/stop, erase) not started by then is dropped, never run late: a
# message redelivered hours after a worker crash must not erase events recorded since.
SEISMO_COMMAND_EXPIRES_S = env.float("SEISMO_COMMAND_EXPIRES_S", SEISMO_LOCK_WAIT_S + 60, minimum=1)
# Link deadlines: per exchange, per 5A chunk, and the silence that ends a 5A stream.
SEISMO_LINK_TIMEOUT_S = env.float("SEISMO_LINK_TIMEOUT_S", 10.0, minimum=0.1)
SEISMO_CHUNK_TIMEOUT_S = env.float("SEISMO_CHUNK_TIMEOUT_S", 10.0, minimum=0.1)
SEISMO_IDLE_GAP_S = env.float("SEISMO_IDLE_GAP_S", 1.5, minimum=0.05)
# Retries of transient link errors (noise, a dropped line), with exponential backoff.
SEISMO_TASK_RETRIES = env.int("SEISMO_TASK_RETRIES", 1, minimum=0)
SEISMO_RETRY_BACKOFF_S = env.float("SEISMO_RETRY_BACKOFF_S", 2.0, minimum=0)
SEISMO_ZSTD_LEVEL = env.int("SEISMO_ZSTD_LEVEL", 3, minimum=1, maximum=22)
