from django.apps import AppConfig
from django.utils.module_loading import autodiscover_modules


class JobSchedulerConfig(AppConfig):
    name = "jobscheduler"
    verbose_name = "Job scheduler"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # Like admin.py: every installed app's jobs.py registers its handlers at start-up.
        autodiscover_modules("jobs")
