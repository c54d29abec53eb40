"""Django settings of the django-q2 peer: the ORM broker on the bench PostgreSQL, django-q2 defaults otherwise.

Connections are persistent (CONN_MAX_AGE None): with Django's default of 0 the ORM broker's
close_old_connections() opens a new connection for every enqueue, fetch and save, which would measure
connection set-up rather than the queue. `BENCH_DJQ_SAVE_LIMIT` sets save_limit (the django-q2-save0 peer: 0,
keep every result, no pruning; the default 250 prunes on every save).
"""

from __future__ import annotations

import os

SECRET_KEY = "bench-not-secret"
DEBUG = False
USE_TZ = True
TIME_ZONE = "UTC"
INSTALLED_APPS = ["django.contrib.contenttypes", "django_q"]
DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": "bench_djangoq",
        "HOST": "127.0.0.1",
        "PORT": os.environ.get("BENCH_PG_PORT", "55432"),
        "USER": "postgres",
        "CONN_MAX_AGE": None,
    }
}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
Q_CLUSTER = {
    "name": "bench",
    "orm": "default",
    "workers": int(os.environ.get("BENCH_DJQ_WORKERS", "2")),  # its default, cpu_count(), on this machine
    "timeout": 60,
    "retry": 120,  # must exceed timeout
    "catch_up": False,
    "log_level": "WARNING",
}
if os.environ.get("BENCH_DJQ_SAVE_LIMIT"):
    Q_CLUSTER["save_limit"] = int(os.environ["BENCH_DJQ_SAVE_LIMIT"])
