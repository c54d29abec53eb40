"""`manage.py jobs`: the operator's command line, beside `runjobworker`.

    jobs list [--status S] [--type NAME] [--tenant T] [--runner R] [--since 2h] [--limit N] [--json]
    jobs show JOB_ID [--json]
    jobs retry JOB_ID | jobs retry --failed [filters]      (a finished job's payload again, as a new job)
    jobs cancel JOB_ID
    jobs schedules [--tenant T] [--json]
    jobs pause SCHEDULE_ID | jobs resume SCHEDULE_ID

Every action goes through the same functions as the dashboard and the admin (`dashboard.actions`: the runner
of the backend that recorded the job), reads go through the models; nothing here writes SQL of its own. Exit
codes are for shell scripts (see `ExitCode`); `--json` prints one JSON document on stdout.
"""

from __future__ import annotations

import enum
import json
import logging
import re
import uuid
from datetime import datetime, timedelta
from typing import Any

from django.core.management.base import BaseCommand, CommandError
from django.db.models import CharField, Exists, OuterRef, QuerySet
from django.db.models.fields.json import KT
from django.db.models.functions import Cast
from django.utils import timezone

from jobscheduler.audit import Actor
from jobscheduler.dashboard import actions
from jobscheduler.exceptions import JobSchedulerError
from jobscheduler.ids import parse_uuid
from jobscheduler.models import Job, JobDetail, JobStatus, Schedule

logger = logging.getLogger("jobscheduler.cli")


class ExitCode(enum.IntEnum):
    OK = 0
    #: No job or schedule has that id (or none matched `list`, like grep).
    NOT_FOUND = 1
    #: Bad arguments (also argparse's own code).
    USAGE = 2
    #: It exists, but the action does not apply: cancel a finished job, retry an unfinished one.
    NOT_APPLICABLE = 3
    #: The backend refused the action (no handler registered for the job any more, Temporal unreachable, ...).
    REFUSED = 4


_DURATION = re.compile(r"^(\d+)([smhd])$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}


class Command(BaseCommand):
    help = "List, show, retry and cancel jobs; list, pause and resume schedules."

    def add_arguments(self, parser):
        commands = parser.add_subparsers(dest="action", required=True, metavar="ACTION")

        listing = commands.add_parser("list", help="jobs, newest first; exit 1 when none matched")
        _filters(listing)
        listing.add_argument("--limit", type=int, default=50, help="at most this many (default 50)")
        _json(listing)

        show = commands.add_parser("show", help="one job with its steps")
        show.add_argument("job_id")
        _tenant(show)
        _json(show)

        retry = commands.add_parser("retry", help="run a finished job's payload again, as a new job")
        retry.add_argument("job_id", nargs="?")
        retry.add_argument("--failed", action="store_true", help="every failed job matching the filters")
        _filters(retry, status=False)
        retry.add_argument("--limit", type=int, default=1000, help="with --failed: at most this many")
        _json(retry)

        cancel = commands.add_parser("cancel", help="cancel a job that has not finished")
        cancel.add_argument("job_id")
        _tenant(cancel)
        _json(cancel)

        schedules = commands.add_parser("schedules", help="recurring schedules; exit 1 when there are none")
        _tenant(schedules)
        _json(schedules)

        for name, verb in (("pause", "pause"), ("resume", "resume")):
            sub = commands.add_parser(name, help=f"{verb} a recurring schedule")
            sub.add_argument("schedule_id")
            _tenant(sub)
            _json(sub)

    def handle(self, *args: Any, **options: Any) -> None:
        self.as_json = options.get("json", False)
        self.actor = Actor.command_line()
        code = getattr(self, f"do_{options['action']}")(options)
        if code != ExitCode.OK:
            raise SystemExit(int(code))

    # -- jobs -------------------------------------------------------------------------------------------------

    def do_list(self, options: dict[str, Any]) -> ExitCode:
        jobs = list(_matching(options)[: _positive(options["limit"], "--limit")])
        if self.as_json:
            self._json([_job_summary(job) for job in jobs])
        else:
            for job in jobs:
                s = _job_summary(job)
                self.stdout.write(
                    f"{s['job_id']}  {s['status']:<10}  {s['type']:<32}  {s['runner_type']:<8}  "
                    f"attempts={s['attempts']}  created={s['created_at']}  tenant={s['tenant']}"
                )
        return ExitCode.OK if jobs else ExitCode.NOT_FOUND

    def do_show(self, options: dict[str, Any]) -> ExitCode:
        job = self._job(options)
        if job is None:
            return ExitCode.NOT_FOUND
        steps = [
            {
                "step": d.step_name,
                "status": d.status,
                "attempt": (d.retry_count or 0) + 1,
                "at": _iso(d.processed_at),
                "result": d.result,
            }
            for d in JobDetail.objects.filter(tenant=job.tenant, job_id=job.job_id).order_by("processed_at")
        ]
        detail = {**_job_summary(job), "data": job.meta.get("data"), "metadata": job.meta, "steps": steps}
        if self.as_json:
            self._json(detail)
            return ExitCode.OK
        for key in (
            "job_id",
            "tenant",
            "type",
            "status",
            "runner_type",
            "attempts",
            "created_at",
            "started_at",
        ):
            self.stdout.write(f"{key:<12} {detail[key]}")
        self.stdout.write(f"{'completed_at':<12} {detail['completed_at']}")
        if detail["error"]:
            self.stdout.write(f"{'error':<12} {detail['error']}")
        self.stdout.write(f"{'data':<12} {json.dumps(detail['data'])}")
        for step in steps:
            self.stdout.write(f"  {step['at']}  attempt {step['attempt']}  {step['step']} ({step['status']})")
        return ExitCode.OK

    def do_retry(self, options: dict[str, Any]) -> ExitCode:
        if options["failed"] == bool(options["job_id"]):
            raise CommandError(
                "Give a job id, or --failed with filters (not both)", returncode=ExitCode.USAGE
            )
        if options["job_id"]:
            job = self._job(options)
            if job is None:
                return ExitCode.NOT_FOUND
            try:
                new_id = actions.retry(job, actor=self.actor)
            except JobSchedulerError as exc:
                self.stderr.write(f"{job.job_id} not retried: {exc}")
                return ExitCode.REFUSED
            self._report_retries([(job, new_id)])
            return ExitCode.OK if new_id else ExitCode.NOT_APPLICABLE
        options = {**options, "status": [JobStatus.FAILED]}
        # A failed job retried before (by anyone) is not retried again: running this twice does not double up.
        retried = Job.objects.annotate(retry_of=KT("metadata__retryOf")).filter(
            retry_of=Cast(OuterRef("job_id"), CharField())
        )
        jobs = list(_matching(options).exclude(Exists(retried))[: _positive(options["limit"], "--limit")])
        done, refused = [], False
        for job in jobs:
            try:
                done.append((job, actions.retry(job, actor=self.actor)))
            except JobSchedulerError as exc:
                self.stderr.write(f"{job.job_id} not retried: {exc}")
                refused = True
        self._report_retries(done)
        return ExitCode.REFUSED if refused else ExitCode.OK

    def _report_retries(self, done: list[tuple[Job, str | None]]) -> None:
        for job, new_id in done:
            logger.info(
                "Retried job %s as %s from the command line",
                job.job_id,
                new_id,
                extra={"action": "cli_retry", "job_id": str(job.job_id), "new_job_id": new_id},
            )
        if self.as_json:
            self._json([{"job_id": str(job.job_id), "new_job_id": new_id} for job, new_id in done])
            return
        for job, new_id in done:
            if new_id:
                self.stdout.write(f"{job.job_id} retried as {new_id}")
            else:
                self.stdout.write(f"{job.job_id} not retried: it is {job.status}, not finished")
        self.stdout.write(f"Retried {sum(1 for _, n in done if n)} of {len(done)} job(s)")

    def do_cancel(self, options: dict[str, Any]) -> ExitCode:
        job = self._job(options)
        if job is None:
            return ExitCode.NOT_FOUND
        try:
            cancelled = actions.cancel(job, actor=self.actor)
        except JobSchedulerError as exc:
            self.stderr.write(f"{job.job_id} not cancelled: {exc}")
            return ExitCode.REFUSED
        logger.info(
            "Cancel of job %s from the command line: %s",
            job.job_id,
            "done" if cancelled else "refused",
            extra={"action": "cli_cancel", "job_id": str(job.job_id), "cancelled": cancelled},
        )
        if self.as_json:
            self._json({"job_id": str(job.job_id), "cancelled": cancelled, "status": job.status})
        elif cancelled:
            self.stdout.write(f"{job.job_id} cancelled")
        else:
            self.stdout.write(f"{job.job_id} not cancelled: it is {job.status}")
        return ExitCode.OK if cancelled else ExitCode.NOT_APPLICABLE

    # -- schedules ------------------------------------------------------------------------------------------

    def do_schedules(self, options: dict[str, Any]) -> ExitCode:
        schedules = Schedule.objects.order_by("tenant", "key")
        tenant = _tenant_of(options)
        if tenant is not None:
            schedules = schedules.filter(tenant=tenant)
        rows = [_schedule_summary(s) for s in schedules]
        if self.as_json:
            self._json(rows)
        else:
            for s in rows:
                state = "paused" if s["paused"] else "active"
                self.stdout.write(
                    f"{s['id']}  {state:<6}  {s['key']:<32}  {s['job_name']:<24}  {s['spec']:<16}  "
                    f"next={s['next_run_at']}  tenant={s['tenant']}"
                )
        return ExitCode.OK if rows else ExitCode.NOT_FOUND

    def do_pause(self, options: dict[str, Any]) -> ExitCode:
        return self._set_paused(options, True)

    def do_resume(self, options: dict[str, Any]) -> ExitCode:
        return self._set_paused(options, False)

    def _set_paused(self, options: dict[str, Any], paused: bool) -> ExitCode:
        schedule_id = _uuid(options["schedule_id"], "schedule id")
        schedules = Schedule.objects.filter(pk=schedule_id)
        tenant = _tenant_of(options)
        if tenant is not None:
            schedules = schedules.filter(tenant=tenant)
        schedule = schedules.first()
        if schedule is None:
            self.stderr.write(f"No schedule {schedule_id}")
            return ExitCode.NOT_FOUND
        try:
            changed = actions.set_paused(schedule, paused, actor=self.actor)
        except JobSchedulerError as exc:
            self.stderr.write(f"{schedule.id} not {'paused' if paused else 'resumed'}: {exc}")
            return ExitCode.REFUSED
        logger.info(
            "Schedule %s %s from the command line",
            schedule.key,
            "paused" if paused else "resumed",
            extra={"action": "cli_pause" if paused else "cli_resume", "schedule_id": str(schedule.id)},
        )
        schedule.refresh_from_db()
        if self.as_json:
            self._json(_schedule_summary(schedule))
        else:
            self.stdout.write(f"{schedule.id} {'paused' if schedule.paused else 'active'} ({schedule.key})")
        return ExitCode.OK if changed else ExitCode.NOT_FOUND

    # -- plumbing ---------------------------------------------------------------------------------------------

    def _job(self, options: dict[str, Any]) -> Job | None:
        job_id = _uuid(options["job_id"], "job id")
        jobs = Job.objects.filter(job_id=job_id)
        tenant = _tenant_of(options)
        if tenant is not None:
            jobs = jobs.filter(tenant=tenant)
        job = jobs.first()
        if job is None:
            self.stderr.write(f"No job {job_id}" + (f" of tenant {tenant}" if tenant else ""))
        return job

    def _json(self, value: Any) -> None:
        self.stdout.write(json.dumps(value, indent=2, default=str))


def _filters(parser, *, status: bool = True) -> None:
    if status:
        parser.add_argument(
            "--status",
            action="append",
            choices=JobStatus.values,
            help="only jobs in this status (repeatable)",
        )
    parser.add_argument("--type", help="only jobs of this name (a task's module path for tasks)")
    _tenant(parser)
    parser.add_argument("--runner", choices=["pgboss", "temporal"], help="only jobs recorded by this backend")
    parser.add_argument(
        "--since", help="only jobs created since: an ISO datetime, or an age like 30m, 2h, 7d"
    )


def _tenant(parser) -> None:
    parser.add_argument("--tenant", help="only this tenant's (a UUID)")


def _json(parser) -> None:
    parser.add_argument("--json", action="store_true", help="print JSON")


def _matching(options: dict[str, Any]) -> QuerySet[Job]:
    jobs = Job.objects.order_by("-created_at")
    if options.get("status"):
        jobs = jobs.filter(status__in=options["status"])
    if options.get("type"):
        jobs = jobs.filter(type=options["type"])
    tenant = _tenant_of(options)
    if tenant is not None:
        jobs = jobs.filter(tenant=tenant)
    if options.get("runner"):
        jobs = jobs.filter(runner_type=options["runner"])
    if options.get("since"):
        jobs = jobs.filter(created_at__gte=_since(options["since"]))
    return jobs


def _since(value: str) -> datetime:
    age = _DURATION.match(value.strip())
    if age:
        return timezone.now() - timedelta(**{_UNITS[age.group(2)]: int(age.group(1))})
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise CommandError(
            f"--since must be an ISO datetime or an age like 30m, 2h, 7d: {value!r}",
            returncode=ExitCode.USAGE,
        ) from None
    return moment if timezone.is_aware(moment) else timezone.make_aware(moment)


def _uuid(value: str, what: str) -> uuid.UUID:
    parsed = parse_uuid(value)
    if parsed is None:
        raise CommandError(f"The {what} must be a UUID: {value!r}", returncode=ExitCode.USAGE)
    return parsed


def _tenant_of(options: dict[str, Any]) -> uuid.UUID | None:
    return _uuid(options["tenant"], "tenant") if options.get("tenant") else None


def _positive(value: int, flag: str) -> int:
    if value < 1:
        raise CommandError(f"{flag} must be at least 1, got {value}", returncode=ExitCode.USAGE)
    return value


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def _job_summary(job: Job) -> dict[str, Any]:
    meta = job.meta
    return {
        "job_id": str(job.job_id),
        "tenant": str(job.tenant),
        "type": job.type,
        "status": job.status,
        "runner_type": job.runner_type,
        "attempts": int(meta.get("attempts") or 0),
        "created_at": _iso(job.created_at),
        "started_at": meta.get("startedAt"),
        "completed_at": meta.get("completedAt"),
        "error": (meta.get("error") or meta.get("cancelReason"))
        if job.status != JobStatus.COMPLETED
        else None,
    }


def _schedule_summary(schedule: Schedule) -> dict[str, Any]:
    return {
        "id": str(schedule.id),
        "tenant": str(schedule.tenant),
        "key": schedule.key,
        "job_name": schedule.job_name,
        "spec": schedule.spec_text,
        "timezone": schedule.timezone,
        "runner_type": schedule.runner_type,
        "paused": schedule.paused,
        "next_run_at": _iso(schedule.next_run_at),
        "last_run_at": _iso(schedule.last_run_at),
    }
