"""`manage.py runjobworker`: run jobs on this machine, for the configured backend or the one named."""

from __future__ import annotations

import logging

from django.core.management.base import BaseCommand, CommandError

from jobscheduler.conf import DEFAULT_CONCURRENCY_RULE, default_concurrency, env_setting, setting
from jobscheduler.exceptions import ExtraNotInstalled
from jobscheduler.extras import Extra, require
from jobscheduler.registry import JobHandlerRegistry


class Command(BaseCommand):
    help = "Run a job worker (pgboss queue worker or Temporal worker)."

    def add_arguments(self, parser):
        parser.add_argument("--backend", choices=["pgboss", "temporal"], help="default: JOB_RUNNER_TYPE")
        parser.add_argument(
            "--concurrency",
            type=int,
            help=f"jobs this worker runs at once, on either backend (default: {DEFAULT_CONCURRENCY_RULE}; "
            f"{default_concurrency()} on this machine)",
        )
        parser.add_argument(
            "--jobs", help="comma-separated job names to serve (default: every registered one)"
        )
        parser.add_argument("--burst", action="store_true", help="drain what is ready, then exit (pgboss)")
        parser.add_argument("--no-scheduler", action="store_true", help="do not fire cron schedules (pgboss)")
        parser.add_argument(
            "--shutdown-timeout",
            type=float,
            help="seconds to let running jobs finish on SIGTERM (default: SHUTDOWN_TIMEOUT_SECONDS)",
        )
        parser.add_argument("--worker-id", help="a stable id for this worker (default: host:pid:random)")

    def handle(self, *args, **options):
        if options["verbosity"] > 1:
            logging.getLogger("jobscheduler").setLevel(logging.DEBUG)
        backend = options["backend"] or env_setting("JOB_RUNNER_TYPE")
        names = [n.strip() for n in (options["jobs"] or "").split(",") if n.strip()] or None
        unknown = [n for n in names or [] if not JobHandlerRegistry.has(n)]
        if unknown:
            raise CommandError(f"No handler registered for job: {', '.join(unknown)}")
        if options["concurrency"] is not None and options["concurrency"] < 1:
            raise CommandError("--concurrency must be at least 1")
        concurrency = options["concurrency"] or default_concurrency()
        shutdown_timeout = options["shutdown_timeout"]
        if shutdown_timeout is None:
            shutdown_timeout = float(setting("SHUTDOWN_TIMEOUT_SECONDS"))
        if backend == "temporal":
            try:
                require(Extra.TEMPORAL)
            except ExtraNotInstalled as exc:
                raise CommandError(str(exc)) from None
            from jobscheduler.temporal.worker import run_temporal_worker

            return self._exit(
                run_temporal_worker(
                    concurrency=concurrency,
                    job_names=names,
                    shutdown_timeout=shutdown_timeout,
                    stdout=self.stdout,
                )
            )
        from jobscheduler.queue.worker import PgBossWorker

        worker = PgBossWorker(
            concurrency=concurrency,
            job_names=names,
            burst=options["burst"],
            scheduler=not options["no_scheduler"],
            shutdown_timeout=shutdown_timeout,
            worker_id=options["worker_id"],
        )
        worker.install_signal_handlers()
        self.stdout.write(
            f"jobscheduler worker {worker.worker_id}: backend pgboss, concurrency {worker.concurrency}, "
            f"handlers: {', '.join(names or JobHandlerRegistry.names()) or '(none)'}"
        )
        self.stdout.flush()
        return self._exit(worker.run())

    @staticmethod
    def _exit(code: int) -> None:
        if code:
            raise SystemExit(code)
