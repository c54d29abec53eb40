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
        parser.add_argument(
            "--metrics-port",
            type=int,
            help="serve this worker's Prometheus metrics on http://0.0.0.0:PORT/metrics (the metrics extra)",
        )
        parser.add_argument(
            "--check",
            action="store_true",
            help="liveness probe: exit 0 if the worker named by --worker-id (else any worker on this host) "
            "heartbeats, 1 if not; starts no worker",
        )

    def handle(self, *args, **options):
        if options["verbosity"] > 1:
            logging.getLogger("jobscheduler").setLevel(logging.DEBUG)
        if options["check"]:
            return self._check(options["worker_id"])
        backend = options["backend"] or env_setting("JOB_RUNNER_TYPE")
        names = [n.strip() for n in (options["jobs"] or "").split(",") if n.strip()] or None
        unknown = [n for n in names or [] if not JobHandlerRegistry.has(n)]
        if unknown:
            raise CommandError(f"No handler registered for job: {', '.join(unknown)}")
        if options["concurrency"] is not None and options["concurrency"] < 1:
            raise CommandError("--concurrency must be at least 1")
        concurrency = options["concurrency"] or default_concurrency()
        if options["metrics_port"] is not None:
            self._serve_metrics(options["metrics_port"])
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

    def _serve_metrics(self, port: int) -> None:
        from jobscheduler.exceptions import MetricsUnavailable
        from jobscheduler.telemetry import metrics

        try:
            metrics.serve(port)
        except MetricsUnavailable as exc:
            raise CommandError(str(exc)) from None
        except OSError as exc:
            raise CommandError(f"--metrics-port {port}: {exc.strerror or exc}") from None

    def _check(self, worker_id: str | None) -> None:
        from jobscheduler.monitoring.health import worker_alive

        alive, line = worker_alive(worker_id)
        (self.stdout if alive else self.stderr).write(line)
        self._exit(0 if alive else 1)

    @staticmethod
    def _exit(code: int) -> None:
        if code:
            raise SystemExit(code)
