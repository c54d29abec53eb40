"""`manage.py jobqueues`: see and change the queues' live settings from a shell.

    jobqueues list
    jobqueues pause NAME
    jobqueues resume NAME

Changes go through the runner API (the same calls as the dashboard), so every worker applies them at its next
claim, without a restart.
"""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from jobscheduler.exceptions import JobSchedulerError
from jobscheduler.queues import QueueState
from jobscheduler.runners.factory import JobRunnerFactory


class Command(BaseCommand):
    help = "List the job queues, or pause / resume one on every worker."

    def add_arguments(self, parser):
        sub = parser.add_subparsers(dest="action", required=True)
        sub.add_parser("list", help="every queue with live settings or a handler")
        for action in ("pause", "resume"):
            sub.add_parser(action, help=f"{action} a queue on every worker").add_argument("name")

    def handle(self, *args, **options):
        runner = JobRunnerFactory.get_instance()
        action = options["action"]
        try:
            if action == "list":
                for state in runner.list_queues():
                    self.stdout.write(describe(state))
                return
            state = (
                runner.pause_queue(options["name"])
                if action == "pause"
                else runner.resume_queue(options["name"])
            )
        except JobSchedulerError as exc:
            raise CommandError(str(exc)) from None
        self.stdout.write(describe(state))


def describe(state: QueueState) -> str:
    return f"{state.name}: {'paused' if state.paused else 'running'}"
