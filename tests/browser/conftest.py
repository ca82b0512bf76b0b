"""A real browser against a live server: Debian's Chromium driven by Playwright.

Never a downloaded browser: /usr/bin/chromium comes from apt (make test installs it when
missing). Screenshots of the main pages go to test-output/screenshots/.
"""

import os
from pathlib import Path

import pytest

# Playwright's sync API keeps an event loop in this thread; the test code's ORM calls are
# still plain synchronous calls between browser steps.
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
SCREENSHOTS = Path(__file__).resolve().parents[2] / "test-output" / "screenshots"
PASSWORD = "browser-test-password-1"


@pytest.fixture(scope="session")
def browser():
    from playwright.sync_api import sync_playwright

    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: apt-get install -y chromium (make test does this)")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def make_user(transactional_db):
    """make_user("ana", "inspector", [line]) -> a user with that role on those lines."""
    from accounts.services import create_user

    def make(username, role, lines=()):
        return create_user(
            username=username,
            role=role,
            line_names=[line.name for line in lines],
            password=PASSWORD,
        )

    return make


@pytest.fixture
def login(browser, live_server):
    """login(user) -> a logged-in page in a fresh browser context (its own cookies)."""
    contexts = []

    def open_page(user, viewport=(1280, 900)):
        context = browser.new_context(
            base_url=live_server.url, viewport={"width": viewport[0], "height": viewport[1]}
        )
        contexts.append(context)
        page = context.new_page()
        page.set_default_timeout(15_000)
        page.goto("/login/")
        page.fill("input[name=username]", user.username)
        page.fill("input[name=password]", PASSWORD)
        page.click("button[type=submit]")
        page.wait_for_url(lambda url: "/login/" not in url)
        return page

    yield open_page
    for context in contexts:
        context.close()


@pytest.fixture
def screenshot():
    """screenshot(page, "review-queue") saves test-output/screenshots/review-queue.png."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)

    def take(page, name):
        page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)

    return take
