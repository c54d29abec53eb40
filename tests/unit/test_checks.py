"""The system checks (`manage.py check`): each mistake gets its id and its message, the example site none."""

from __future__ import annotations

from types import ModuleType

import pytest
from django.contrib.auth import views as auth_views
from django.core.checks import run_checks
from django.core.management import call_command
from django.core.management.base import SystemCheckError
from django.urls import include, path

from jobscheduler import checks
from jobscheduler.registry import RetryPolicy


def ours(messages) -> list[tuple[str, str, str | None]]:
    return [(m.id, m.msg, m.hint) for m in messages if m.id.startswith("jobscheduler.")]


def urlconf(*patterns) -> ModuleType:
    """A URLconf module made in place (hashable, as Django's resolver cache needs)."""
    module = ModuleType("test_urlconf")
    module.urlpatterns = list(patterns)
    return module


DASHBOARD = path("ops/", include([path("jobs/", include("jobscheduler.dashboard.urls"))]))
AUTH = path("accounts/", include("django.contrib.auth.urls"))


def test_the_example_site_has_no_issues():
    assert ours(run_checks()) == []


def test_checks_are_registered_and_fail_manage_py_check(settings):
    settings.JOBSCHEDULER = {"LEASE_SECOND": 60}
    with pytest.raises(SystemCheckError) as err:
        call_command("check", "--tag", "jobscheduler")
    assert "?: (jobscheduler.E004) Unknown JOBSCHEDULER setting 'LEASE_SECOND'." in str(err.value)


@pytest.mark.filterwarnings("ignore:Overriding setting DATABASES")
def test_e001_database_that_is_not_postgresql(settings):
    settings.DATABASES = {
        **settings.DATABASES,
        "default": {"ENGINE": "django.db.backends.sqlite3", "NAME": "x"},
    }
    assert ours(checks.check_database()) == [
        (
            "jobscheduler.E001",
            "django-jobscheduler needs PostgreSQL, but DATABASES['default'] uses django.db.backends.sqlite3 "
            "(sqlite).",
            "Point DATABASES['default'] at a PostgreSQL database (ENGINE 'django.db.backends.postgresql'): "
            "the job queue and the jobs record live in it.",
        )
    ]


@pytest.mark.filterwarnings("ignore:Overriding setting DATABASES")
def test_e001_accepts_postgis_and_postgresql(settings):
    assert checks.check_database() == []
    settings.DATABASES = {
        **settings.DATABASES,
        "default": {**settings.DATABASES["default"], "ENGINE": "django.contrib.gis.db.backends.postgis"},
    }
    assert checks.check_database() == []


def test_e002_dashboard_without_its_apps(settings):
    settings.ROOT_URLCONF = urlconf(DASHBOARD, AUTH)
    settings.INSTALLED_APPS = [
        a for a in settings.INSTALLED_APPS if a not in ("django_tables2", "django_filters")
    ]
    assert ours(checks.check_dashboard()) == [
        (
            "jobscheduler.E002",
            "The jobscheduler dashboard is mounted but django_tables2 and django_filters are not in INSTALLED_APPS.",
            "Add 'django_tables2', 'django_filters' to INSTALLED_APPS: the dashboard's history table and "
            "filters are rendered with their templates.",
        )
    ]
    settings.INSTALLED_APPS = [*settings.INSTALLED_APPS, "django_tables2"]
    assert ours(checks.check_dashboard())[0][1] == (
        "The jobscheduler dashboard is mounted but django_filters is not in INSTALLED_APPS."
    )


def test_e002_does_not_apply_when_the_dashboard_is_not_mounted(settings):
    settings.ROOT_URLCONF = urlconf(AUTH)
    settings.INSTALLED_APPS = [
        a for a in settings.INSTALLED_APPS if a not in ("django_tables2", "django_filters")
    ]
    assert checks.check_dashboard() == []


def test_e003_and_w002_dashboard_without_sign_in_and_out(settings):
    settings.ROOT_URLCONF = urlconf(DASHBOARD)
    settings.LOGIN_URL = "/accounts/login/"
    assert ours(checks.check_dashboard()) == [
        (
            "jobscheduler.E003",
            "The jobscheduler dashboard is mounted but no URL is named 'logout' (its header has a sign-out "
            "button), so every page would fail to render.",
            'Add path("accounts/", include("django.contrib.auth.urls")) to your URLconf, or name your own '
            "sign-out URL 'logout'.",
        ),
        (
            "jobscheduler.W002",
            "The jobscheduler dashboard sends signed-out viewers to LOGIN_URL ('/accounts/login/'), which no URL "
            "of this site answers.",
            'Add path("accounts/", include("django.contrib.auth.urls")) to your URLconf, or set LOGIN_URL to '
            "your sign-in page.",
        ),
    ]


def test_w002_accepts_a_url_name_and_another_sites_sign_in(settings):
    settings.ROOT_URLCONF = urlconf(
        DASHBOARD, path("signin/", auth_views.LoginView.as_view(), name="signin"), AUTH
    )
    for login_url in ("signin", "/signin/?x=1", "https://sso.example.com/login"):
        settings.LOGIN_URL = login_url
        assert checks.check_dashboard() == [], login_url
    settings.LOGIN_URL = "no-such-name"
    assert [m.id for m in checks.check_dashboard()] == ["jobscheduler.W002"]


def test_e004_unknown_key_suggests_the_close_one(settings):
    settings.JOBSCHEDULER = {"LEASE_SECOND": 60, "ZZZ": 1}
    found = ours(checks.check_settings())
    assert found[0] == (
        "jobscheduler.E004",
        "Unknown JOBSCHEDULER setting 'LEASE_SECOND'.",
        "Did you mean 'LEASE_SECONDS'?",
    )
    assert found[1][:2] == ("jobscheduler.E004", "Unknown JOBSCHEDULER setting 'ZZZ'.")
    assert found[1][2].startswith("Known settings: DASHBOARD_CACHE_SECONDS, DASHBOARD_REFRESH_SECONDS, ")
    assert len(found) == 2


def test_e005_jobscheduler_not_a_dict(settings):
    settings.JOBSCHEDULER = [("LEASE_SECONDS", 60)]
    assert ours(checks.check_settings()) == [
        (
            "jobscheduler.E005",
            "settings.JOBSCHEDULER must be a dict, got list.",
            'For example JOBSCHEDULER = {"LEASE_SECONDS": 60}.',
        )
    ]


def test_e006_tenant_resolver(settings):
    settings.JOBSCHEDULER = {"TENANT_RESOLVER": "myapp.tenancy.nope"}
    (found,) = ours(checks.check_settings())
    assert found[0] == "jobscheduler.E006"
    assert found[1] == (
        "JOBSCHEDULER[\"TENANT_RESOLVER\"] 'myapp.tenancy.nope' cannot be imported: No module named 'myapp'"
    )
    settings.JOBSCHEDULER = {"TENANT_RESOLVER": "jobscheduler.conf.DEFAULTS"}
    assert ours(checks.check_settings()) == [
        (
            "jobscheduler.E006",
            "JOBSCHEDULER[\"TENANT_RESOLVER\"] 'jobscheduler.conf.DEFAULTS' is not callable.",
            "Give the dotted path of a function fn(request) -> tenant UUID or None.",
        )
    ]


def test_e007_invalid_runner_type(settings):
    settings.JOB_RUNNER_TYPE = "redis"
    assert ours(checks.check_settings()) == [
        ("jobscheduler.E007", "Invalid JOB_RUNNER_TYPE 'redis'.", "Use one of: pgboss, temporal.")
    ]
    settings.JOB_RUNNER_TYPE = " Temporal "
    assert ours(checks.check_settings()) == []  # installed here (E008 is tested in test_lean_install.py)


def test_e009_lease_not_longer_than_heartbeat_and_w001_expiry(settings):
    settings.JOBSCHEDULER = {"LEASE_SECONDS": 5, "HEARTBEAT_SECONDS": 5.0, "WORKER_EXPIRY_SECONDS": 2}
    assert ours(checks.check_settings()) == [
        (
            "jobscheduler.E009",
            "LEASE_SECONDS (5) must be longer than HEARTBEAT_SECONDS (5): a lease would lapse before the "
            "heartbeat that extends it, and live jobs would be rescued and run twice.",
            "Keep LEASE_SECONDS several heartbeats long (the defaults are 30 and 5).",
        ),
        (
            "jobscheduler.W001",
            "WORKER_EXPIRY_SECONDS (2) is not longer than HEARTBEAT_SECONDS (5): live workers would drop off "
            "the dashboard's workers list between heartbeats.",
            "Keep WORKER_EXPIRY_SECONDS several heartbeats long (the defaults are 60 and 5).",
        ),
    ]
    settings.JOBSCHEDULER = {"LEASE_SECONDS": 5.5, "HEARTBEAT_SECONDS": 5}
    assert ours(checks.check_settings()) == []


def test_e010_numbers(settings):
    settings.JOBSCHEDULER = {
        "POLL_INTERVAL_SECONDS": 0,
        "SHUTDOWN_TIMEOUT_SECONDS": -1,
        "FETCH_BATCH_SIZE": 2.5,
        "MAX_PAYLOAD_BYTES": True,
        "RETENTION_DAYS": "30",
        "LEASE_SECONDS": "30",
    }
    assert [m[1] for m in ours(checks.check_settings())] == [
        "JOBSCHEDULER[\"LEASE_SECONDS\"] must be a number greater than 0, got '30'.",
        'JOBSCHEDULER["POLL_INTERVAL_SECONDS"] must be a number greater than 0, got 0.',
        'JOBSCHEDULER["SHUTDOWN_TIMEOUT_SECONDS"] must be a number of at least 0, got -1.',
        'JOBSCHEDULER["MAX_PAYLOAD_BYTES"] must be an integer greater than 0, got True.',
        'JOBSCHEDULER["FETCH_BATCH_SIZE"] must be an integer greater than 0, got 2.5.',
        'JOBSCHEDULER["RETENTION_DAYS"] must be a number of days greater than 0, or None to keep everything, '
        "got '30'.",
    ]
    assert {m[0] for m in ours(checks.check_settings())} == {"jobscheduler.E010"}
    settings.JOBSCHEDULER = {
        "RETENTION_DAYS": None,
        "SHUTDOWN_TIMEOUT_SECONDS": 0,
        "DASHBOARD_CACHE_SECONDS": 0,
    }
    assert ours(checks.check_settings()) == []


def test_e010_the_temporal_reprobe_cool_down_may_be_zero_but_not_negative(settings):
    settings.JOBSCHEDULER = {"TEMPORAL_REPROBE_SECONDS": -1}
    assert [(m[0], m[1]) for m in ours(checks.check_settings())] == [
        (
            "jobscheduler.E010",
            'JOBSCHEDULER["TEMPORAL_REPROBE_SECONDS"] must be a number of at least 0, got -1.',
        )
    ]
    settings.JOBSCHEDULER = {"TEMPORAL_REPROBE_SECONDS": 0}
    assert ours(checks.check_settings()) == []


def test_e011_flags_e012_uuids_e013_retry_e014_redact_keys(settings):
    settings.JOBSCHEDULER = {
        "REQUIRE_TENANT": "yes",
        "DEFAULT_TENANT": "tenant-1",
        "SYSTEM_USER_ID": 0,
        "DEFAULT_RETRY": {"max_attempts": 5},
        "REDACT_KEYS": "password",
    }
    assert [(m[0], m[1]) for m in ours(checks.check_settings())] == [
        ("jobscheduler.E011", "JOBSCHEDULER[\"REQUIRE_TENANT\"] must be True or False, got 'yes'."),
        ("jobscheduler.E012", "JOBSCHEDULER[\"DEFAULT_TENANT\"] must be a UUID, got 'tenant-1'."),
        ("jobscheduler.E012", 'JOBSCHEDULER["SYSTEM_USER_ID"] must be a UUID, got 0.'),
        (
            "jobscheduler.E013",
            "JOBSCHEDULER[\"DEFAULT_RETRY\"] must be a jobscheduler.RetryPolicy or None, got {'max_attempts': 5}.",
        ),
        ("jobscheduler.E014", "JOBSCHEDULER[\"REDACT_KEYS\"] must be a list of strings, got 'password'."),
    ]
    settings.JOBSCHEDULER = {"DEFAULT_RETRY": RetryPolicy(max_attempts=5), "REDACT_KEYS": ["pin"]}
    assert ours(checks.check_settings()) == []
