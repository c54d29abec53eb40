"""A Temporal worker process for the kill/restart test: the real `runjobworker --backend temporal` command,
with the test's handler registered first. Run as a script; importing it only defines the handler."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

KILL_RESTART_JOB = "temporal-kill-restart"


def slow_first_attempt(job_id: str, data: dict) -> dict:
    """The first attempt hangs (its worker gets killed meanwhile); a later attempt finishes at once."""
    from jobscheduler import current_job

    attempt = current_job().attempt
    if attempt == 1:
        time.sleep(60)
    return {"attempt": attempt, "pid": os.getpid()}


def main() -> None:
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "project.settings")
    import django

    django.setup()
    from django.core.management import call_command

    from jobscheduler.registry import JobHandlerRegistry

    JobHandlerRegistry.register(KILL_RESTART_JOB, slow_first_attempt)
    call_command("runjobworker", backend="temporal", concurrency=2, shutdown_timeout=1)


if __name__ == "__main__":
    main()
