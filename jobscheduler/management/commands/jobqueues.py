"""`manage.py jobqueues`: see and change the queues' live settings from a shell.

    jobqueues list
    jobqueues pause NAME
    jobqueues resume NAME
    jobqueues limits NAME [--concurrency N|none] [--tenant-concurrency N|none] [--rate-limit 10/s|none]
    jobqueues reset NAME                      (back to JOBSCHEDULER["QUEUES"])

Changes go through the runner API (the same calls as the dashboard), so every worker applies them at its next
claim, without a restart; each is recorded in the audit log (`--actor`, default the login name).
"""

from __future__ import annotations

import argparse

from django.core.management.base import BaseCommand, CommandError

from jobscheduler.audit import Actor
from jobscheduler.exceptions import JobSchedulerError
from jobscheduler.models import AuditSource
from jobscheduler.queues import UNCHANGED, QueueState
from jobscheduler.runners.factory import JobRunnerFactory


class Command(BaseCommand):
    help = "List the job queues, or pause / resume one on every worker."

    def add_arguments(self, parser):
        parser.add_argument("--actor", help="who, for the audit log (default: your login name)")
        sub = parser.add_subparsers(dest="action", required=True)
        sub.add_parser("list", help="every queue with live settings or a handler")
        for action in ("pause", "resume"):
            sub.add_parser(action, help=f"{action} a queue on every worker").add_argument("name")
        limits = sub.add_parser("limits", help="change a queue's limits on every worker ('none' removes one)")
        limits.add_argument("name")
        limits.add_argument(
            "--concurrency", type=_limit, default=UNCHANGED, help="jobs running at once, all workers"
        )
        limits.add_argument(
            "--tenant-concurrency", type=_limit, default=UNCHANGED, help="jobs running at once per tenant"
        )
        limits.add_argument(
            "--rate-limit", type=_rate, default=UNCHANGED, help="starts per period: 10/s, 100/m, 5/10s"
        )
        sub.add_parser("reset", help='put a queue back to JOBSCHEDULER["QUEUES"]').add_argument("name")

    def handle(self, *args, **options):
        runner = JobRunnerFactory.get_instance()
        action = options["action"]
        try:
            if action == "list":
                for state in runner.list_queues():
                    self.stdout.write(describe(state))
                return
            name, actor = options["name"], cli_actor(options["actor"])
            if action == "pause":
                state = runner.pause_queue(name, actor=actor)
            elif action == "resume":
                state = runner.resume_queue(name, actor=actor)
            elif action == "reset":
                state = runner.reset_queue(name, actor=actor)
            else:
                state = runner.set_queue_limits(
                    name,
                    actor=actor,
                    concurrency=options["concurrency"],
                    tenant_concurrency=options["tenant_concurrency"],
                    rate_limit=options["rate_limit"],
                )
        except JobSchedulerError as exc:
            raise CommandError(str(exc)) from None
        self.stdout.write(describe(state))


def describe(state: QueueState) -> str:
    limits = "".join(
        f", {label} {value}"
        for label, value in (
            ("concurrency", state.concurrency),
            ("per tenant", state.tenant_concurrency),
            ("rate", state.rate_limit),
        )
        if value is not None
    )
    return f"{state.name}: {'paused' if state.paused else 'running'}{limits}"


def _rate(text: str) -> str | None:
    return None if text.lower() == "none" else text


def _limit(text: str) -> int | None:
    if text.lower() == "none":
        return None
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number or 'none', got {text!r}") from None


def cli_actor(name: str | None) -> Actor:
    """Who ran the command, for the audit log: --actor, else the login name."""
    return Actor(source=AuditSource.CLI, name=name) if name else Actor.command_line()
