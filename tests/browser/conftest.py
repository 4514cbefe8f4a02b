"""Headless Chromium through Playwright, against pytest-django's live server.

Chromium is the system one (Debian's /usr/bin/chromium, or CHROMIUM_PATH): `playwright install`
is never needed. Without it the browser tests are skipped with the reason shown in the summary,
except under CI (the CI variable is set), where a missing browser is an error.
"""

import contextlib
import os
import shutil

import pytest

# Playwright's sync API keeps an asyncio loop in the test thread; Django's ORM refuses to run
# synchronous queries while it sees a running loop unless this is set. The queries here are
# ordinary blocking ones made between browser calls, so that refusal does not apply.
os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"

CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
]
DESKTOP = {"width": 1280, "height": 900}
TIMEOUT_MS = 20_000


def chromium_path():
    """The Chromium executable to drive, or None when there is none on this machine."""
    candidates = [
        os.environ.get("CHROMIUM_PATH"),
        "/usr/bin/chromium",
        shutil.which("chromium"),
        shutil.which("chromium-browser"),
    ]
    for path in candidates:
        if path and os.path.isfile(path) and os.access(path, os.X_OK):
            return path
    return None


def _unavailable(reason):
    if os.environ.get("CI"):
        pytest.fail(f"browser tests: {reason}", pytrace=False)
    pytest.skip(f"browser tests skipped: {reason}")


@pytest.fixture(scope="session")
def browser():
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _unavailable("the playwright package is not installed (pip install -e '.[dev]')")
    executable = chromium_path()
    if executable is None:
        _unavailable(
            "no Chromium executable found (set CHROMIUM_PATH, or install the chromium package "
            "so that /usr/bin/chromium exists)"
        )
    playwright = sync_playwright().start()
    try:
        chromium = playwright.chromium.launch(
            executable_path=executable, args=CHROMIUM_ARGS, headless=True
        )
    except Exception as exc:
        playwright.stop()
        _unavailable(f"Chromium at {executable} did not start: {exc}")
    yield chromium
    chromium.close()
    playwright.stop()


@pytest.fixture
def page(browser, live_server):
    # Depending on live_server makes this close first: the page's background requests
    # (prefetch, judgements sent behind) must be over before the test database is flushed,
    # or the flush's TRUNCATE deadlocks with a request still running in the server thread.
    context = browser.new_context(viewport=DESKTOP)
    context.set_default_timeout(TIMEOUT_MS)
    tab = context.new_page()
    yield tab
    # A page that never loaded has nothing in flight: a timeout here is not a failure.
    with contextlib.suppress(Exception):
        tab.wait_for_load_state("networkidle", timeout=TIMEOUT_MS)
    context.close()


def login(page, live_server, username, password="pw-for-tests"):
    """Log in through the real form; returns once the page after login has loaded."""
    page.goto(f"{live_server.url}/accounts/login/")
    page.fill("#id_username", username)
    page.fill("#id_password", password)
    with page.expect_navigation():
        page.click("main form button[type=submit]")
    return page


@pytest.fixture(autouse=True)
def _fast_password_hashing(settings):
    # Each test creates a user and logs in through the form: PBKDF2 would cost ~1 s a time.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


def settled(page):
    """Wait until no judgement is on its way to the server (the page sends them behind)."""
    page.wait_for_function(
        "() => document.body.dataset.inflight === '0' && !document.querySelector('.htmx-request')"
    )


def card_ids(page):
    """The candidate ids of the item on screen, in the order shown."""
    return [
        int(x)
        for x in page.locator("#judge-form .candidate").evaluate_all(
            "cards => cards.map(c => c.dataset.id)"
        )
    ]
