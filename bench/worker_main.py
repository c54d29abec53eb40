"""Bench worker entry point: Django set up, the bench handlers registered, then `manage.py runjobworker`.

Run as `python bench/worker_main.py --burst --no-scheduler --concurrency 10` (arguments go to runjobworker);
the environment (DATABASE_URL, JOBSCHEDULER, JOB_RUNNER_TYPE) comes from the driver.
"""

import os
import sys
from pathlib import Path

if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "project.settings")
    import django

    django.setup()
    from django.core.management import call_command

    import bench.handlers  # noqa: F401  (registers noop and probe)

    call_command("runjobworker", *sys.argv[1:])
