"""Settings of the example site, from the environment (django-environ).

With no DATABASE_URL the site runs on an embedded PostgreSQL kept in `.data/pg` (git-ignored).
"""

from pathlib import Path

import environ

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env(
    DEBUG=(bool, True),
    SECRET_KEY=(str, "dev-only-insecure-secret-key-change-me"),
    ALLOWED_HOSTS=(list, ["localhost", "127.0.0.1", "[::1]", "testserver"]),
    JOB_RUNNER_TYPE=(str, "pgboss"),
    JOB_RUNNER_FALLBACK_TO_PGBOSS=(bool, True),
    TEMPORAL_ADDRESS=(str, "localhost:7233"),
    TEMPORAL_NAMESPACE=(str, "default"),
    TEMPORAL_JOB_TASK_QUEUE=(str, "alga-jobs"),
    JOBSCHEDULER_DATA_DIR=(str, str(BASE_DIR / ".data")),
)
environ.Env.read_env(BASE_DIR / ".env")

DEBUG = env("DEBUG")
SECRET_KEY = env("SECRET_KEY")
ALLOWED_HOSTS = env("ALLOWED_HOSTS")

if env.str("DATABASE_URL", default=""):
    DATABASES = {"default": env.db("DATABASE_URL")}
else:
    from project.embedded_db import embedded_database_url

    DATABASES = {
        "default": env.db_url_config(embedded_database_url(Path(env("JOBSCHEDULER_DATA_DIR")) / "pg"))
    }
DATABASES["default"].setdefault("CONN_MAX_AGE", 60)
DATABASES["default"]["CONN_HEALTH_CHECKS"] = True

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django_tables2",
    "django_filters",
    "project.accounts",
    "project.demo",
    "jobscheduler",
]
try:  # Django 6 has django.tasks built in; Django 5.2 gets it from the django-tasks backport
    import django.tasks  # noqa: F401
except ImportError:
    INSTALLED_APPS.append("django_tasks")

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "project.urls"
WSGI_APPLICATION = "project.wsgi.application"
AUTH_USER_MODEL = "accounts.User"
LOGIN_URL = "/accounts/login/"
LOGIN_REDIRECT_URL = "/msp/jobs/"

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

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True
STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / ".data" / "static"

# The seed's variables (read by jobscheduler.conf from here or from the environment).
JOB_RUNNER_TYPE = env("JOB_RUNNER_TYPE")
JOB_RUNNER_FALLBACK_TO_PGBOSS = env("JOB_RUNNER_FALLBACK_TO_PGBOSS")
TEMPORAL_ADDRESS = env("TEMPORAL_ADDRESS")
TEMPORAL_NAMESPACE = env("TEMPORAL_NAMESPACE")
TEMPORAL_JOB_TASK_QUEUE = env("TEMPORAL_JOB_TASK_QUEUE")

# The example site is multi-tenant (demo tenants Acme and Globex), so it is strict: a job names its tenant
# (else TenantRequired) and a user linked to no tenant sees nothing. The JOBSCHEDULER environment variable
# (JSON) adds or overrides keys.
JOBSCHEDULER = {"REQUIRE_TENANT": True, **env.json("JOBSCHEDULER", default={})}

# Django's task API (`@task` functions, `.enqueue()`) on django-jobscheduler. The example site is multi-tenant,
# so its tasks run for one tenant of their own (the `TASKS` environment variable as JSON replaces this).
TASKS = env.json(
    "TASKS",
    default={
        "default": {
            "BACKEND": "jobscheduler.tasks.JobSchedulerBackend",
            "OPTIONS": {"TENANT_ID": "00000000-0000-0000-0000-00000000a5c5"},
        }
    },
)

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "loggers": {
        "jobscheduler": {"handlers": ["console"], "level": env.str("JOBSCHEDULER_LOG_LEVEL", "INFO")}
    },
}
