"""The seed's original `JobScheduler` API, kept for code written against it; it delegates to the runner."""

from __future__ import annotations

import threading
from datetime import datetime, timedelta
from typing import Any

from .runners.factory import JobRunnerFactory


class JobScheduler:
    _instance: JobScheduler | None = None
    _lock = threading.Lock()

    @classmethod
    def get_instance(cls) -> JobScheduler:
        with cls._lock:
            if cls._instance is None:
                cls._instance = cls()
            return cls._instance

    @property
    def runner(self):
        return JobRunnerFactory.get_instance()

    def schedule_immediate_job(self, job_name: str, data: dict[str, Any], **options: Any) -> str | None:
        return self.runner.schedule_job(job_name, data, **options).job_id

    def schedule_scheduled_job(
        self, job_name: str, run_at: datetime, data: dict[str, Any], **options: Any
    ) -> str | None:
        return self.runner.schedule_job_at(job_name, data, run_at, **options).job_id

    def schedule_recurring_job(
        self, job_name: str, cron: str | timedelta, data: dict[str, Any], **options: Any
    ) -> str | None:
        return self.runner.schedule_recurring_job(job_name, data, cron, **options).job_id

    def get_job_status(self, job_id: Any, tenant_id: Any):
        return self.runner.get_job_status(job_id, tenant_id)

    def cancel_job(self, job_id: Any, tenant_id: Any) -> bool:
        return self.runner.cancel_job(job_id, tenant_id)
