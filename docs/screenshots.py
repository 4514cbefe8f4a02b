"""Drive a running `make demo` through the loop in headless Chromium and save screenshots.

Usage: .venv/bin/python docs/screenshots.py [http://127.0.0.1:8000] [out-dir]
"""

import re
import sys
import time
from pathlib import Path

from playwright.sync_api import expect, sync_playwright

BASE = sys.argv[1] if len(sys.argv) > 1 else "http://127.0.0.1:8000"
OUT = Path(sys.argv[2] if len(sys.argv) > 2 else Path(__file__).parent)
PASSWORD = "preflab-demo"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update"]


def login(page, username):
    page.goto(f"{BASE}/accounts/login/")
    page.fill("#id_username", username)
    page.fill("#id_password", PASSWORD)
    page.click("main button[type=submit]")
    expect(page.locator("h1")).to_contain_text("Projects")


def annotate(page, count):
    page.goto(f"{BASE}/annotate/support-demo/")
    for _ in range(count):
        form = page.locator("#judge-form")
        item = form.get_attribute("data-item")
        n = page.locator(".candidate").count()
        for key in range(n, 1, -1):  # rank by position reversed: any full ranking will do
            page.keyboard.press(str(key))
        page.keyboard.press("Enter")
        expect(page.locator("#judge-form")).not_to_have_attribute("data-item", item)


def main():
    OUT.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=ARGS)
        page = browser.new_page(viewport={"width": 1280, "height": 860})
        login(page, "annotator")
        annotate(page, 40)
        page.goto(f"{BASE}/annotate/support-demo/")
        page.keyboard.press("2")
        page.screenshot(path=OUT / "annotate-desktop.png")
        narrow = browser.new_page(viewport={"width": 390, "height": 844})
        narrow.context.add_cookies(page.context.cookies())
        narrow.goto(f"{BASE}/annotate/support-demo/")
        narrow.screenshot(path=OUT / "annotate-narrow.png", full_page=True)

        page.context.clear_cookies()
        login(page, "engineer")
        page.goto(f"{BASE}/rlhf/projects/support-demo/train/")
        page.fill("#id_max_steps", "40")
        page.fill("#id_learning_rate", "0.0005")
        page.click("main button[type=submit]")
        page.wait_for_url(re.compile(r"/rlhf/runs/\d+/"))
        deadline = time.monotonic() + 900
        while time.monotonic() < deadline:
            status = page.locator("[data-testid=run-status]").inner_text()
            if status in ("Succeeded", "Failed", "Cancelled"):
                break
            page.wait_for_timeout(2000)
        page.wait_for_timeout(2500)
        page.screenshot(path=OUT / "run-detail.png", full_page=True)

        page.context.clear_cookies()
        login(page, "manager")
        page.goto(f"{BASE}/dashboard/support-demo/")
        page.wait_for_timeout(1000)
        page.screenshot(path=OUT / "dashboard.png", full_page=True)
        browser.close()


if __name__ == "__main__":
    main()
