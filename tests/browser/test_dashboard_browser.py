"""The dashboard in a real browser: charts drawn, numbers one click away, tables sortable."""

import os
import uuid
from pathlib import Path

import pytest

from annotate import queue
from annotate.services import Answer, submit_judgement
from tests import factories
from tests.browser.conftest import login

expect = pytest.importorskip(
    "playwright.sync_api", reason="playwright is not installed (pip install -e '.[dev]')"
).expect

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_a_manager_reads_charts_numbers_and_sorts_annotators(page, live_server):
    project = factories.project_with_items(n_prompts=6, n_candidates=3, overlap=3,
                                           name="Support")
    for name, seconds, reverse in (("ada", 2000, False), ("bob", 9000, False),
                                   ("cyd", 5000, True)):
        user = factories.user(name, "Annotator")
        while (a := queue.claim_next(project, user)) is not None:
            order = sorted(a.shown_order, reverse=reverse)
            submit_judgement(user, a.pk, Answer(ranking=";".join(map(str, order))),
                             uuid.uuid4(), duration_ms=seconds)
    factories.user("mona", "Manager")
    login(page, live_server, "mona")
    page.goto(f"{live_server.url}/dashboard/{project.slug}/")

    # Every chart is drawn by the vendored Chart.js.
    page.wait_for_function("() => window.Chart && Object.keys(Chart.instances).length >= 3")
    expect(page.get_by_test_id("alpha")).not_to_have_text("—")
    page.get_by_text("Numbers", exact=True).first.click()
    expect(page.get_by_test_id("agreement-table")).to_contain_text("pairs")
    page.get_by_label("per week").check()
    page.wait_for_function("() => Object.values(Chart.instances).some("
                           "c => c.canvas.id === 'agreement-chart')")

    table = page.get_by_test_id("annotators-table")
    names = lambda: table.locator("tbody tr td:first-child").all_inner_texts()  # noqa: E731
    header = table.get_by_role("button", name="Median s / item")
    header.focus()
    page.keyboard.press("Enter")
    assert names() == ["bob", "cyd", "ada"]
    expect(table.locator("thead th").nth(2)).to_have_attribute("aria-sort", "descending")
    page.keyboard.press("Enter")
    assert names() == ["ada", "cyd", "bob"]
    target = os.environ.get("PREFLAB_SHOTS_DIR")
    if target:
        page.screenshot(path=str(Path(target) / "dashboard.png"), full_page=True)
