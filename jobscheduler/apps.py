from django.apps import AppConfig
from django.conf import settings
from django.utils.module_loading import autodiscover_modules


class JobSchedulerConfig(AppConfig):
    name = "jobscheduler"
    verbose_name = "Job scheduler"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from . import checks  # noqa: F401  (registers the system checks, jobscheduler.E001...)

        # Like admin.py: every installed app's jobs.py registers its handlers at start-up.
        autodiscover_modules("jobs")
        if any(_is_ours(config) for config in (getattr(settings, "TASKS", None) or {}).values()):
            # Workers must find @task functions by module path before any task is enqueued in this process.
            from . import tasks  # noqa: F401  (registers the registry's task resolver)


def _is_ours(config: object) -> bool:
    return isinstance(config, dict) and str(config.get("BACKEND", "")).startswith("jobscheduler.")
