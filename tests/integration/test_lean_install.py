"""A plain install has no temporalio: the app, the dashboard, the admin, the migrations and the worker command
never import it, and choosing the Temporal backend without it is a clear error naming the pip extra.

Each case runs the example site in a subprocess whose `sitecustomize` (on PYTHONPATH) puts a meta-path finder in
front of every other: any import of `temporalio` fails exactly as it does when the package is absent, and is
written to a log, so an import that something swallowed is still seen.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.support import processes

EXTRA_ERROR = (
    "The temporal backend needs the temporalio package, which is not installed: "
    "pip install 'django-jobscheduler[temporal]'"
)

BLOCKER = textwrap.dedent(
    """
    import os
    import sys


    class NoTemporalio:
        def find_spec(self, name, path=None, target=None):
            if name == "temporalio" or name.startswith("temporalio."):
                with open(os.environ["BLOCKED_IMPORTS_LOG"], "a") as log:
                    log.write(name + "\\n")
                raise ModuleNotFoundError(f"No module named {name!r}", name=name)
            return None


    sys.meta_path.insert(0, NoTemporalio())
    """
)


@pytest.fixture
def without_temporalio(tmp_path: Path):
    """Run `python ARGS...` in the example site with temporalio made uninstallable; returns (result, attempts)."""
    (tmp_path / "sitecustomize.py").write_text(BLOCKER)
    log = tmp_path / "blocked.log"

    def run(*args: str, **env: str) -> tuple[subprocess.CompletedProcess[str], list[str]]:
        log.write_text("")
        result = subprocess.run(
            [sys.executable, *args],
            cwd=processes.ROOT,
            env={
                **os.environ,
                "PYTHONPATH": os.pathsep.join([str(tmp_path), str(processes.ROOT)]),
                "BLOCKED_IMPORTS_LOG": str(log),
                "DATABASE_URL": processes.test_database_url(),
                "DJANGO_SETTINGS_MODULE": "project.settings",
                **env,
            },
            capture_output=True,
            text=True,
            timeout=120,
        )
        return result, log.read_text().split()

    return run


IMPORT_EVERYTHING = """
import django
django.setup()
import jobscheduler, jobscheduler.admin, jobscheduler.checks, jobscheduler.dashboard.views
import jobscheduler.dashboard.urls, jobscheduler.management.commands.runjobworker
from django.db.migrations.loader import MigrationLoader
loaded = [key for key in MigrationLoader(None).disk_migrations if key[0] == "jobscheduler"]
from jobscheduler import JobRunnerFactory, schedule_job
print("runner", JobRunnerFactory.create().runner_type, "migrations", len(loaded))
"""


def test_the_blocker_really_blocks(without_temporalio):
    result, attempts = without_temporalio("-c", "import temporalio")
    assert result.returncode == 1
    assert "ModuleNotFoundError: No module named 'temporalio'" in result.stderr
    assert attempts == ["temporalio"]


def test_app_dashboard_admin_and_migrations_never_import_temporalio(without_temporalio):
    result, attempts = without_temporalio("-c", IMPORT_EVERYTHING)
    assert result.returncode == 0, result.stderr
    assert "runner pgboss migrations " in result.stdout
    assert int(result.stdout.split()[-1]) >= 5
    assert attempts == []


@pytest.mark.django_db
def test_manage_commands_never_import_temporalio(without_temporalio):
    for args in (
        ["runjobworker", "--help"],
        ["jobs", "--help"],
        ["check"],
        ["showmigrations", "jobscheduler"],
    ):
        result, attempts = without_temporalio("manage.py", *args)
        assert result.returncode == 0, (args, result.stderr)
        assert attempts == [], args
    assert "[X] 0005_uuid7" in result.stdout


def test_choosing_temporal_without_it_is_a_check_error(without_temporalio):
    result, _ = without_temporalio("manage.py", "check", JOB_RUNNER_TYPE="temporal")
    assert result.returncode == 1
    assert (
        "?: (jobscheduler.E008) JOB_RUNNER_TYPE is 'temporal' but the temporalio package is not installed.\n"
        "\tHINT: pip install 'django-jobscheduler[temporal]'"
    ) in result.stderr


def test_temporal_worker_without_it_names_the_extra(without_temporalio):
    result, _ = without_temporalio(
        "manage.py", "runjobworker", "--backend", "temporal", "--skip-checks", JOB_RUNNER_TYPE="pgboss"
    )
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1] == f"CommandError: {EXTRA_ERROR}"


def test_temporal_runner_without_it_is_an_error_not_a_fallback(without_temporalio):
    script = """
import django
django.setup()
from jobscheduler import JobRunnerFactory
from jobscheduler.exceptions import ExtraNotInstalled
try:
    JobRunnerFactory.get_instance()
except ExtraNotInstalled as exc:
    print(type(exc).__name__, isinstance(exc, ImportError), exc)
"""
    result, _ = without_temporalio(
        "-c", script, JOB_RUNNER_TYPE="temporal", JOB_RUNNER_FALLBACK_TO_PGBOSS="true"
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"ExtraNotInstalled True {EXTRA_ERROR}"
