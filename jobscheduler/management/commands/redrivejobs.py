"""`manage.py redrivejobs`: retry or cancel every job of a tenant matching a selection, in batches, audited.

    redrivejobs retry  --tenant T [--status failed] [--type NAME] [--queue Q] [--runner R]
                       [--created-after ISO] [--created-before ISO] [--finished-after ISO] [--finished-before ISO]
                       [--payload "customerId=42"] [--batch-size N] [--actor NAME]
    redrivejobs cancel --tenant T [the same criteria]

The same selection as the dashboard's history filter and the same runner calls (`retry_jobs`, `cancel_jobs`),
so the audit log shows who ran it (`--actor`, default the login name).
"""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from jobscheduler.audit import Actor
from jobscheduler.exceptions import JobSchedulerError
from jobscheduler.models import AuditSource
from jobscheduler.runners.factory import JobRunnerFactory
from jobscheduler.selection import JobSelection

CRITERIA = (
    "status",
    "type",
    "queue",
    "runner",
    "created_after",
    "created_before",
    "finished_after",
    "finished_before",
    "payload",
)


class Command(BaseCommand):
    help = "Retry (finished) or cancel (live) every job of a tenant matching the criteria given."

    def add_arguments(self, parser):
        parser.add_argument("action", choices=["retry", "cancel"])
        parser.add_argument("--tenant", required=True, help="the tenant's id")
        for name in CRITERIA:
            parser.add_argument(f"--{name.replace('_', '-')}", dest=name)
        parser.add_argument("--batch-size", type=int, default=1000, help="jobs per statement (default 1000)")
        parser.add_argument("--actor", help="who, for the audit log (default: your login name)")

    def handle(self, *args, **options):
        runner = JobRunnerFactory.get_instance()
        try:
            selection = JobSelection.from_params({name: options[name] for name in CRITERIA})
            bulk = runner.retry_jobs if options["action"] == "retry" else runner.cancel_jobs
            outcome = bulk(
                selection,
                options["tenant"],
                actor=cli_actor(options["actor"]),
                batch_size=options["batch_size"],
            )
        except JobSchedulerError as exc:
            raise CommandError(str(exc)) from None
        verb = "Retried" if options["action"] == "retry" else "Cancelled"
        self.stdout.write(
            f"{verb} {outcome.done} job(s) of {outcome.matched} matching; {outcome.skipped} skipped."
        )


def cli_actor(name: str | None) -> Actor:
    """Who ran the command, for the audit log: --actor, else the login name."""
    return Actor(source=AuditSource.CLI, name=name) if name else Actor.command_line()
