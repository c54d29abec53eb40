"""A site process for the database-outage test: schedules jobs through the public API on its own DATABASE_URL.

The test's own Django connection points at the session's database; the jobs of the outage test live on a
cluster the test stops and starts, so they are scheduled from a process configured for it (as a web process of
a real site would be). Commands may be chained with `then`; prints one JSON list, a result per command.

    outage_client.py every <job_name> <seconds> <tenant> <key>       -> "<schedule id>"
    outage_client.py jobs <job_name> <count> <seconds> <tenant>      -> ["<job id>", ...]
"""

import json
import os
import sys
from datetime import timedelta


def run(runner, command: str, args: list[str]):
    if command == "jobs":
        name, count, seconds, tenant = args
        return [
            runner.schedule_job(name, {"seconds": float(seconds)}, tenant_id=tenant).job_id
            for _ in range(int(count))
        ]
    if command == "every":
        name, seconds, tenant, key = args
        every = timedelta(seconds=float(seconds))
        return runner.schedule_recurring_job(name, {}, every, tenant_id=tenant, schedule_key=key).job_id
    raise SystemExit(f"unknown command {command!r}")


if __name__ == "__main__":
    sys.path.insert(0, os.getcwd())
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "project.settings")
    import django

    django.setup()
    import tests.support.handlers  # noqa: F401  (registers the test handlers)
    from jobscheduler import JobRunnerFactory

    runner = JobRunnerFactory.get_instance()
    assert runner.runner_type == "temporal" and not runner.fallback_active, runner.runner_type
    commands, current = [], []
    for word in sys.argv[1:]:
        if word == "then":
            commands.append(current)
            current = []
        else:
            current.append(word)
    commands.append(current)
    print(json.dumps([run(runner, command, args) for command, *args in commands]))
    runner.close()
