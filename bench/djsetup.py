"""Django in the driver process, on the bench database, with the bench handlers registered."""

from __future__ import annotations

import os
import subprocess
import sys

from bench.config import REPO


def migrate(database_url: str) -> None:
    """`manage.py migrate` in a subprocess, so the driver's own Django starts on a migrated schema."""
    env = dict(os.environ, DATABASE_URL=database_url, DJANGO_SETTINGS_MODULE="project.settings")
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "--no-input", "-v", "0"], cwd=str(REPO), env=env, check=True
    )


def setup(database_url: str) -> None:
    """Django as a production site runs it: DEBUG off, so no cursor wrapper records every query."""
    os.environ["DATABASE_URL"] = database_url
    os.environ["DEBUG"] = "false"
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "project.settings")
    if str(REPO) not in sys.path:
        sys.path.insert(0, str(REPO))
    import django

    django.setup()
    import bench.handlers  # noqa: F401


def reset_runner() -> None:
    """Drop the runner singleton so a changed JOB_RUNNER_TYPE takes effect."""
    from jobscheduler import JobRunnerFactory

    JobRunnerFactory.reset()
