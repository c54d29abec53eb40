"""Django settings of the django-tasks peer: django-tasks-db's DatabaseBackend on the bench PostgreSQL.

Since django-tasks 0.12 the database backend is the separate django-tasks-db package. Connections are
persistent, as for django-q2 (see djangoq_settings).
"""

from __future__ import annotations

import os

SECRET_KEY = "bench-not-secret"
DEBUG = False
USE_TZ = True
TIME_ZONE = "UTC"
INSTALLED_APPS = ["django_tasks", "django_tasks_db"]
DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": "bench_djangotasks",
        "HOST": "127.0.0.1",
        "PORT": os.environ.get("BENCH_PG_PORT", "55432"),
        "USER": "postgres",
        "CONN_MAX_AGE": None,
    }
}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
TASKS = {"default": {"BACKEND": "django_tasks_db.DatabaseBackend", "QUEUES": ["default"]}}
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "loggers": {"django_tasks": {"level": "WARNING"}, "django_tasks_db": {"level": "WARNING"}},
}
