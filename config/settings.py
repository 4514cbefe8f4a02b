"""preflab settings: one file, read from the environment."""

import os
from pathlib import Path

import dj_database_url

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(os.getenv("PREFLAB_VAR_DIR", BASE_DIR / "var"))
# The SQLite database, models and uploads live here; a fresh clone has no var/ yet.
(VAR_DIR / "staticfiles").mkdir(parents=True, exist_ok=True)


def envstr(name, default=None):
    """Return an env var, or the contents of the file named by NAME_FILE (for secrets)."""
    path = os.getenv(f"{name}_FILE")
    if path:
        return Path(path).read_text().strip()
    return os.getenv(name, default)


def envbool(name, default=False):
    value = os.getenv(name)
    if value is None:
        return default
    return value.strip().lower() in ("1", "true", "yes", "on")


def envint(name, default):
    return int(os.getenv(name, default))


def envlist(name, default=""):
    return [part.strip() for part in os.getenv(name, default).split(",") if part.strip()]


DEBUG = envbool("DEBUG", False)
SECRET_KEY = envstr("SECRET_KEY", "preflab-insecure-dev-key-set-SECRET_KEY-in-production")
ALLOWED_HOSTS = envlist("ALLOWED_HOSTS", "127.0.0.1,localhost,testserver")
CSRF_TRUSTED_ORIGINS = envlist("CSRF_TRUSTED_ORIGINS")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django_htmx",
    "template_partials",
    "ninja",
    "annotate",
    "rlhf",
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
    "django_htmx.middleware.HtmxMiddleware",
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"

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
                "annotate.context_processors.roles",
            ],
        },
    },
]

DATABASES = {
    "default": dj_database_url.parse(
        envstr("DATABASE_URL", f"sqlite:///{VAR_DIR / 'preflab.sqlite3'}"),
        conn_max_age=envint("DB_CONN_MAX_AGE", 0),
    )
}
if DATABASES["default"]["ENGINE"].endswith("sqlite3"):
    # WAL lets the web server read while the worker writes; IMMEDIATE avoids lock upgrades
    # failing mid-transaction. The test database is a file so a worker process can share it.
    DATABASES["default"]["OPTIONS"] = {
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        "transaction_mode": "IMMEDIATE",
        "timeout": 30,
    }
    # One file per test run, so that two runs on one machine do not share it.
    DATABASES["default"]["TEST"] = {"NAME": str(VAR_DIR / f"test-{os.getpid()}.sqlite3")}

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
]

LOGIN_URL = "/accounts/login/"
LOGIN_REDIRECT_URL = "/"
LOGOUT_REDIRECT_URL = "/accounts/login/"

LANGUAGE_CODE = "en-us"
TIME_ZONE = os.getenv("TIME_ZONE", "UTC")
USE_I18N = True
USE_TZ = True

STATIC_URL = "/static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = VAR_DIR / "staticfiles"
MEDIA_ROOT = Path(os.getenv("MEDIA_ROOT", VAR_DIR / "media"))
MEDIA_URL = "/media/"

DATA_UPLOAD_MAX_MEMORY_SIZE = 50 * 1024 * 1024
FILE_UPLOAD_MAX_MEMORY_SIZE = 10 * 1024 * 1024

# --- Celery -----------------------------------------------------------------------------------
REDIS_URL = envstr("REDIS_URL", "redis://127.0.0.1:6379/0")
CELERY_BROKER_URL = envstr("CELERY_BROKER_URL", REDIS_URL)
CELERY_RESULT_BACKEND = None
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TIMEZONE = TIME_ZONE
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# A training run may take hours: the hard limit is explicit, and Redis must not redeliver an
# unacknowledged message before it (visibility timeout > hard limit).
TRAINING_SOFT_TIME_LIMIT = envint("TRAINING_SOFT_TIME_LIMIT", 6 * 3600)
TRAINING_HARD_TIME_LIMIT = TRAINING_SOFT_TIME_LIMIT + 300
GENERATION_SOFT_TIME_LIMIT = envint("GENERATION_SOFT_TIME_LIMIT", 2 * 3600)
# A loop iteration trains its recipe's runs (up to three) and evaluates, in one task.
LOOP_SOFT_TIME_LIMIT = envint("LOOP_SOFT_TIME_LIMIT", 3 * TRAINING_SOFT_TIME_LIMIT)
LOOP_HARD_TIME_LIMIT = LOOP_SOFT_TIME_LIMIT + 300
CELERY_BROKER_TRANSPORT_OPTIONS = {
    "visibility_timeout": max(TRAINING_HARD_TIME_LIMIT, LOOP_HARD_TIME_LIMIT) + 3600
}
# The web process must answer quickly when the broker is down instead of hanging.
CELERY_BROKER_CONNECTION_TIMEOUT = 3
CELERY_TASK_PUBLISH_RETRY_POLICY = {"max_retries": 2, "interval_start": 0.2, "interval_step": 0.5}
QUEUE_DEFAULT = "default"
QUEUE_TRAINING = "training"
QUEUE_GENERATION = "generation"
CELERY_TASK_DEFAULT_QUEUE = QUEUE_DEFAULT
CELERY_TASK_ROUTES = {
    "rlhf.tasks.train": {"queue": QUEUE_TRAINING},
    "rlhf.tasks.loop_iteration": {"queue": QUEUE_TRAINING},
    "rlhf.tasks.generate": {"queue": QUEUE_GENERATION},
    "rlhf.tasks.score_open_items": {"queue": QUEUE_GENERATION},
    "rlhf.tasks.evaluate": {"queue": QUEUE_GENERATION},
    "rlhf.tasks.augment": {"queue": QUEUE_GENERATION},
}
CELERY_BEAT_SCHEDULE = {
    "reclaim-expired-leases": {"task": "annotate.tasks.reclaim_expired_leases", "schedule": 60.0},
    "fail-stale-runs": {"task": "rlhf.tasks.fail_stale_runs", "schedule": 120.0},
    "refresh-dashboards": {"task": "annotate.tasks.refresh_dashboards", "schedule": 300.0},
    "loop-tick": {"task": "rlhf.tasks.loop_tick", "schedule": 60.0},
}

# --- preflab ----------------------------------------------------------------------------------
# A hub id or a local path; empty means "build the tiny demo model locally" (offline).
PREFLAB_BASE_MODEL = envstr("PREFLAB_BASE_MODEL", "")
PREFLAB_MODELS_DIR = Path(os.getenv("PREFLAB_MODELS_DIR", VAR_DIR / "models"))
PREFLAB_DEMO_PASSWORD = envstr("PREFLAB_DEMO_PASSWORD", "preflab-demo")
# A run whose heartbeat is older than this is considered dead (worker killed).
PREFLAB_HEARTBEAT_TIMEOUT = envint("PREFLAB_HEARTBEAT_TIMEOUT", 600)
# Where people reach the app: links in webhook payloads point here.
PREFLAB_SITE_URL = envstr("PREFLAB_SITE_URL", "http://127.0.0.1:8000")

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": os.getenv("LOG_LEVEL", "INFO")},
    "loggers": {"django.db.backends": {"level": "WARNING"}},
}

# Serve static files from the app's folders too, so `make demo` needs no collectstatic step.
WHITENOISE_USE_FINDERS = True
