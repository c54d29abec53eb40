"""`manage.py setupdemo`: demo accounts, two tenants, recurring schedules and a burst of jobs.

Safe to run on every `make run`: accounts and schedules are created or updated by name/key, and the burst of
jobs is only enqueued for a tenant that has no jobs yet (use `--burst` to add another one).
"""

from __future__ import annotations

import random
from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.core.management.base import BaseCommand
from django.db import transaction

from jobscheduler.models import Job
from jobscheduler.runners.factory import JobRunnerFactory
from project.accounts.models import Tenant

TENANTS = (("Acme", "acme-admin", "acme"), ("Globex", "globex-admin", "globex"))
STAFF_PERMISSIONS = (
    "view_job",
    "cancel_job",
    "retry_job",
    "view_schedule",
    "change_schedule",
    "change_queue",
)

SCHEDULES = (
    ("expired-credits", "*/2 * * * *"),
    ("reconcile-bucket-usage", "* * * * *"),
    ("cleanup-temporary-workflow-forms", "*/5 * * * *"),
    ("createNextTimePeriods", "0 * * * *"),
)

BURST = (
    ("generate-invoice", 8),
    ("invoice_email", 6),
    ("invoice_zip", 2),
    ("asset_import", 3),
    ("credit-reconciliation", 3),
    ("expiring-credits-notification", 2),
    ("renew-microsoft-calendar-webhooks", 2),
    ("verify-google-calendar-pubsub", 2),
    ("createClientContractLineCycles", 2),
    ("cleanup-ai-session-keys", 1),
)


class Command(BaseCommand):
    help = "Create the demo accounts, tenants, recurring schedules and a burst of jobs (idempotent)."

    def add_arguments(self, parser) -> None:
        parser.add_argument(
            "--burst", action="store_true", help="Enqueue another burst of jobs for each tenant."
        )

    def handle(self, *args: Any, burst: bool = False, **options: Any) -> None:
        user_model = get_user_model()
        admin, created = user_model.objects.get_or_create(
            username="admin", defaults={"is_staff": True, "is_superuser": True, "email": "admin@example.com"}
        )
        if created:
            admin.set_password("admin")
            admin.save()
        permissions = list(
            Permission.objects.filter(content_type__app_label="jobscheduler", codename__in=STAFF_PERMISSIONS)
        )
        runner = JobRunnerFactory.get_instance()
        for name, username, password in TENANTS:
            tenant, _ = Tenant.objects.get_or_create(name=name)
            user, created = user_model.objects.get_or_create(
                username=username,
                defaults={"tenant": tenant, "is_staff": True, "email": f"{username}@example.com"},
            )
            if created:
                user.set_password(password)
                user.save()
            user.user_permissions.add(*permissions)
            for job_name, cron in SCHEDULES:
                runner.schedule_recurring_job(
                    job_name,
                    {"tenantId": str(tenant.tenant)},
                    cron,
                    schedule_key=job_name,
                    tenant_id=tenant.tenant,
                    user_id=user.id,
                )
            fresh = not Job.objects.for_tenant(tenant.tenant).exists()
            if fresh or burst:
                count = self.enqueue_burst(runner, tenant, user)
                self.stdout.write(f"{name}: enqueued {count} jobs")
        self.stdout.write(self.style.SUCCESS("Demo ready: admin/admin, acme-admin/acme, globex-admin/globex"))

    @staticmethod
    def enqueue_burst(runner, tenant: Tenant, user) -> int:
        count = 0
        with transaction.atomic():
            for job_name, times in BURST:
                for n in range(times):
                    data = {
                        "tenantId": str(tenant.tenant),
                        "billingCycleId": f"{tenant.name.lower()}-{random.randint(1000, 9999)}",
                        "batch": n + 1,
                        "apiToken": f"demo-{random.getrandbits(64):016x}",
                    }
                    runner.schedule_job(job_name, data, tenant_id=tenant.tenant, user_id=user.id)
                    count += 1
        return count
