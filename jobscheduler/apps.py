from django.apps import AppConfig
from django.db.models.signals import post_migrate
from django.utils.module_loading import autodiscover_modules


class JobSchedulerConfig(AppConfig):
    name = "jobscheduler"
    verbose_name = "Job scheduler"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # Like admin.py: every installed app's jobs.py registers its handlers at start-up.
        autodiscover_modules("jobs")
        post_migrate.connect(_seed_queues, sender=self)


def _seed_queues(sender, using: str = "default", **kwargs) -> None:
    """`migrate` gives every queue of JOBSCHEDULER["QUEUES"] its row of live settings (workers do it too)."""
    from .queues import seed_from_settings

    if using == "default":
        seed_from_settings()
