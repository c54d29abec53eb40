"""Demo handlers under the seed's job names, so `make run` shows a living dashboard.

Each handler does a few seconds of pretend work in steps: it reports progress and records its steps through
`current_job()`, and some fail now and then (a flaky "remote API") so retries, failures and tracebacks show up.
Timeouts follow the seed: 5 minutes for invoices, 10 for ZIP archives and asset imports, the default elsewhere.
"""

from __future__ import annotations

import random
import time
from typing import Any

from jobscheduler import RetryPolicy, current_job, job_handler

MINUTE_MS = 60_000
FLAKY = RetryPolicy(max_attempts=3, initial_interval_ms=2000, backoff_coefficient=2.0, max_interval_ms=20_000)


class RemoteServiceError(RuntimeError):
    """The pretend third-party API answered with an error (retryable)."""


class InvalidDemoData(ValueError):
    """The payload cannot be processed (never retried)."""


def work(
    steps: list[str], *, failure_rate: float = 0.0, pause: tuple[float, float] = (0.3, 1.2)
) -> dict[str, Any]:
    """Run named steps with progress; maybe fail in the middle, as real integrations do."""
    job = current_job()
    fail_at = random.randrange(len(steps)) if random.random() < failure_rate else None
    done = 0
    for index, name in enumerate(steps):
        job.raise_if_cancelled()
        job.progress(round(100 * index / len(steps)), f"{name}…")
        time.sleep(random.uniform(*pause))
        if index == fail_at:
            job.step(name, "failed", {"reason": "remote service returned 503"})
            raise RemoteServiceError(f"{name}: remote service returned 503 Service Unavailable")
        done += random.randint(1, 40)
        job.step(name, "completed", {"items": done})
    job.progress(100, "done")
    return {"items": done, "attempt": job.attempt}


@job_handler("generate-invoice", timeout_ms=5 * MINUTE_MS, retry=FLAKY)
def generate_invoice(job_id: str, data: dict[str, Any]) -> dict[str, Any]:
    return work(
        ["load billing cycle", "price usage", "apply credits", "render PDF", "store invoice"],
        failure_rate=0.15,
    )


@job_handler("invoice_zip", timeout_ms=10 * MINUTE_MS, retry=FLAKY)
def invoice_zip(job_id: str, data: dict[str, Any]) -> dict[str, Any]:
    return work(
        ["collect invoices", "compress archive", "upload archive"], failure_rate=0.05, pause=(0.8, 2.0)
    )


@job_handler("invoice_email", retry=FLAKY)
def invoice_email(job_id: str, data: dict[str, Any]) -> dict[str, Any]:
    return work(["render email", "attach invoice", "send via SMTP"], failure_rate=0.2)


@job_handler("expired-credits")
def expired_credits(job_id: str, data: dict[str, Any]) -> dict[str, Any]:
    return work(["find expired credits", "write off balances"])


@job_handler("expiring-credits-notification", retry=FLAKY)
def expiring_credits_notification(job_id: str, data: dict[str, Any]) -> dict[str, Any]:
    return work(["find credits expiring in 30 days", "notify clients"], failure_rate=0.1)


@job_handler(
    "credit-reconciliation", retry=RetryPolicy(max_attempts=2, non_retryable_errors=["InvalidDemoData"])
)
def credit_reconciliation(job_id: str, data: dict[str, Any]) -> dict[str, Any]:
    if random.random() < 0.08:
        current_job().step("validate ledger", "failed", {"reason": "ledger out of balance"})
        raise InvalidDemoData("ledger is out of balance by 12.50; refusing to reconcile")
    return work(["load ledger", "compare balances", "write corrections"])


@job_handler("asset_import", timeout_ms=10 * MINUTE_MS, retry=FLAKY)
def asset_import(job_id: str, data: dict[str, Any]) -> dict[str, Any]:
    return work(
        ["read CSV batch", "validate rows", "match existing assets", "insert assets", "index assets"],
        failure_rate=0.1,
        pause=(0.6, 1.8),
    )


@job_handler("reconcile-bucket-usage")
def reconcile_bucket_usage(job_id: str, data: dict[str, Any]) -> dict[str, Any]:
    return work(["sum usage records", "update buckets"])


@job_handler("cleanup-temporary-workflow-forms")
def cleanup_temporary_workflow_forms(job_id: str, data: dict[str, Any]) -> dict[str, Any]:
    return work(["find stale forms", "delete forms"], pause=(0.1, 0.4))


@job_handler("renew-microsoft-calendar-webhooks", retry=FLAKY)
def renew_microsoft_calendar_webhooks(job_id: str, data: dict[str, Any]) -> dict[str, Any]:
    return work(["list subscriptions", "renew subscriptions"], failure_rate=0.15)


@job_handler("verify-google-calendar-pubsub", retry=FLAKY)
def verify_google_calendar_pubsub(job_id: str, data: dict[str, Any]) -> dict[str, Any]:
    return work(["check topic", "check subscription"], failure_rate=0.1)


@job_handler("cleanup-ai-session-keys")
def cleanup_ai_session_keys(job_id: str, data: dict[str, Any]) -> dict[str, Any]:
    return work(["find expired session keys", "revoke keys"], pause=(0.1, 0.4))


@job_handler("createClientContractLineCycles")
def create_client_contract_line_cycles(job_id: str, data: dict[str, Any]) -> dict[str, Any]:
    return work(["load contract lines", "create billing cycles"])


@job_handler("createNextTimePeriods")
def create_next_time_periods(job_id: str, data: dict[str, Any]) -> dict[str, Any]:
    return work(["read period settings", "create time periods"], pause=(0.1, 0.5))
