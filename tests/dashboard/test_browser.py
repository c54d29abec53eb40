"""The dashboard in a real browser: Debian's Chromium driven by Playwright against pytest-django's live server.

Screenshots land in `test-artifacts/` (git-ignored) for a human to look at.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from django.conf import settings
from django.core.cache import cache
from django.db import connections

from jobscheduler.models import Job, JobStatus
from jobscheduler.runners.factory import JobRunnerFactory
from tests.dashboard.conftest import ALL_PERMISSIONS, finished_job

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ARTIFACTS = Path(settings.BASE_DIR) / "test-artifacts"


@pytest.fixture
def page(monkeypatch):
    # Playwright's sync API runs an event loop in this thread; the test still reads the ORM between steps.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    from playwright.sync_api import sync_playwright

    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        context = browser.new_context(viewport={"width": 1360, "height": 900})
        tab = context.new_page()
        tab.on("dialog", lambda dialog: dialog.accept())
        tab.set_default_timeout(10_000)
        yield tab
        browser.close()
        # ORM calls made while Playwright's loop runs get a connection of their own (asgiref's context-local
        # storage); close it here, in that same context, or the test database cannot be dropped afterwards.
        connections.close_all()


def test_login_overview_filter_detail_cancel(page, live_server, acme, make_user):
    user = make_user(acme, *ALL_PERMISSIONS)
    user.set_password("secret-pw")
    user.save()
    for _ in range(3):
        finished_job(acme)
    failed = finished_job(acme, JobStatus.FAILED, type="invoice_email")
    runner = JobRunnerFactory.get_instance()
    queued_id = runner.schedule_job(
        "asset_import", {"batch": 1, "apiToken": "tok-visible-nowhere"}, tenant_id=acme.tenant
    ).job_id

    page.goto(f"{live_server.url}/msp/jobs/")
    assert "/accounts/login/" in page.url
    page.fill("input[name=username]", user.username)
    page.fill("input[name=password]", "secret-pw")
    page.click("button[type=submit]")

    page.wait_for_selector("h1:has-text('Overview')")
    assert page.inner_text(".card.completed .value") == "3"
    assert page.inner_text(".card.failed .value") == "1"
    assert page.inner_text(".card.queued .value") == "1"
    page.screenshot(path=str(ARTIFACTS / "overview.png"), full_page=True)

    # Live refresh: a new job appears without reloading the page.
    runner.schedule_job("asset_import", {"batch": 2}, tenant_id=acme.tenant)
    cache.clear()
    page.wait_for_function(
        "document.querySelector('.card.queued .value').textContent.trim() === '2'", timeout=12_000
    )

    # While the tab is hidden nothing is fetched; on becoming visible it refreshes at once.
    refreshes = []
    page.on(
        "request",
        lambda r: refreshes.append(r) if r.headers.get("x-requested-with") == "live-refresh" else None,
    )
    page.evaluate("Object.defineProperty(document, 'hidden', {configurable: true, get: () => true})")
    page.wait_for_timeout(6_000)
    assert refreshes == []
    with page.expect_request(lambda r: r.headers.get("x-requested-with") == "live-refresh", timeout=2_000):
        page.evaluate(
            "Object.defineProperty(document, 'hidden', {configurable: true, get: () => false});"
            "document.dispatchEvent(new Event('visibilitychange'))"
        )

    page.click("nav >> text=History")
    page.select_option("select[name=status]", "failed")
    page.click("button:has-text('Apply')")
    page.wait_for_url("**status=failed**")
    rows = page.locator("table.data-table tbody tr")
    assert rows.count() == 1
    assert "invoice_email" in rows.first.inner_text()
    page.screenshot(path=str(ARTIFACTS / "history-filtered.png"), full_page=True)

    rows.first.locator("a", has_text="invoice_email").click()
    page.wait_for_selector("h2:has-text('Failed attempts')")
    assert str(failed.job_id) in page.inner_text("main")
    assert "Traceback (most recent call last)" in page.inner_text("main")
    page.screenshot(path=str(ARTIFACTS / "job-failed.png"), full_page=True)

    page.goto(f"{live_server.url}/msp/jobs/{queued_id}/")
    assert "tok-visible-nowhere" not in page.content()
    page.click("button:has-text('Cancel job')")
    page.wait_for_selector(".messages li.success")
    assert f"Cancelled job {queued_id}." in page.inner_text(".messages")
    assert page.inner_text("h1 .badge") == "cancelled"
    assert Job.objects.get(job_id=queued_id).status == JobStatus.CANCELLED
    page.screenshot(path=str(ARTIFACTS / "job-cancelled.png"), full_page=True)


def test_history_job_id_copies_the_whole_id(page, live_server, acme, make_user):
    """The history shows each id's distinguishing tail; its copy button puts the whole id on the clipboard."""
    from playwright.sync_api import expect

    user = make_user(acme, *ALL_PERMISSIONS)
    user.set_password("secret-pw")
    user.save()
    runner = JobRunnerFactory.get_instance()
    ids = [runner.schedule_job("asset_import", {"n": n}, tenant_id=acme.tenant).job_id for n in range(3)]
    page.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=live_server.url)
    page.goto(f"{live_server.url}/msp/jobs/history/")
    page.fill("input[name=username]", user.username)
    page.fill("input[name=password]", "secret-pw")
    page.click("button[type=submit]")

    shown = page.locator("table.data-table tbody .job-id")
    expect(shown).to_have_count(3)
    assert sorted(shown.all_inner_texts()) == sorted(f"…{job_id[-12:]}" for job_id in ids)
    button = page.locator("table.data-table tbody tr", has_text=ids[1][-12:]).locator("button.copy")
    button.click()
    expect(button).to_have_text("copied")
    assert page.evaluate("navigator.clipboard.readText()") == ids[1]
    page.screenshot(path=str(ARTIFACTS / "history-job-ids.png"), full_page=True)

    # Served over plain http to another host there is no Clipboard API: the textarea fallback copies instead.
    page.evaluate(
        "() => { Object.defineProperty(window, 'isSecureContext', {configurable: true, get: () => false});"
        "navigator.clipboard.writeText = () => Promise.reject(new Error('not offered over plain http')); }"
    )
    button = page.locator("table.data-table tbody tr", has_text=ids[2][-12:]).locator("button.copy")
    button.click()
    expect(button).to_have_text("copied")
    assert page.evaluate("navigator.clipboard.readText()") == ids[2]
