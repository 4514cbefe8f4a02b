"""The review flow in a real browser: disputed item → reviewer's answer → export; gold checks."""

import os
import uuid
from pathlib import Path

import pytest

from annotate import queue
from annotate.models import AnnotatorStanding, Item
from annotate.services import preference_rows, submit_judgement
from tests import factories
from tests.browser.conftest import login

expect = pytest.importorskip(
    "playwright.sync_api", reason="playwright is not installed (pip install -e '.[dev]')"
).expect

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def shot(page, name):
    target = os.environ.get("PREFLAB_SHOTS_DIR")
    if target:
        page.screenshot(path=str(Path(target) / f"{name}.png"), full_page=True)


def disputed_project():
    """Two items of two candidates; two annotators rank them in opposite orders."""
    project = factories.project_with_items(n_prompts=2, n_candidates=2, overlap=2,
                                           review_threshold=0.5, name="Support")
    for i, forward in enumerate((True, False)):
        user = factories.user(f"ann{i}", "Annotator")
        for _ in range(2):
            a = queue.claim_next(project, user)
            ranking = ";".join(map(str, sorted(a.shown_order, reverse=not forward)))
            submit_judgement(user, a.pk, ranking, uuid.uuid4(), duration_ms=4200)
    return project


def test_a_reviewer_adjudicates_the_queue_with_the_keyboard(page, live_server):
    project = disputed_project()
    first, second = Item.objects.filter(project=project).order_by("id")
    factories.user("rita", "Reviewer")
    login(page, live_server, "rita")

    page.get_by_role("link", name="Review").click()
    expect(page.get_by_test_id("pending-count")).to_have_text("2")
    page.get_by_role("link", name=f"Item {first.pk}").click()

    judgements = page.get_by_test_id("review-judgements")
    expect(judgements.locator("tbody tr")).to_have_count(2)
    expect(judgements).to_contain_text("ann0")
    expect(judgements).to_contain_text("ann1")
    expect(judgements).to_contain_text("A > B")
    expect(judgements).to_contain_text("B > A")
    shot(page, "review-item")

    # The first rank select has focus: rank B first, A second, by keyboard alone.
    expect(page.locator("select").first).to_be_focused()
    page.keyboard.press("2")           # Response A → rank 2
    page.keyboard.press("Tab")
    page.keyboard.press("1")           # Response B → rank 1
    page.keyboard.press("Tab")
    page.keyboard.type("B quotes the returns policy.")
    page.keyboard.press("Tab")         # make-gold checkbox, left unticked
    page.keyboard.press("Tab")
    with page.expect_navigation():
        page.keyboard.press("Enter")   # Save answer

    # The next disputed item opens at once.
    expect(page.locator("h1")).to_contain_text(f"Item {second.pk}")
    expect(page.locator(".messages")).to_contain_text(f"Item {first.pk} adjudicated: B > A")
    page.select_option(f"#rank-{sorted(second.candidates.values_list('id', flat=True))[0]}", "1")
    page.select_option(f"#rank-{sorted(second.candidates.values_list('id', flat=True))[1]}", "2")
    page.get_by_label("Also use this answer as a gold item").check()
    with page.expect_navigation():
        page.get_by_role("button", name="Save answer").click()
    expect(page.get_by_test_id("review-empty")).to_be_visible()

    first.refresh_from_db()
    second.refresh_from_db()
    low, high = sorted(first.candidates.values_list("id", flat=True))
    assert first.adjudication.ranking == [[high], [low]]
    assert first.adjudication.comment == "B quotes the returns policy."
    assert second.is_gold and second.review_status == "resolved"
    rows = list(preference_rows(project))
    assert [r["source"] for r in rows] == ["review", "review"]
    assert rows[0]["chosen"][0]["content"] == first.candidates.get(pk=high).text

    page.get_by_role("link", name="Adjudicated").click()
    expect(page.get_by_test_id("review-queue")).to_contain_text("rita")


def test_a_manager_sees_gold_accuracy_and_resumes_a_paused_annotator(page, live_server):
    project = factories.project_with_items(n_prompts=3, n_candidates=2, overlap=1,
                                           gold_rate=0.5, gold_min_judged=1, gold_pause=True)
    slow = factories.user("sam", "Annotator")
    AnnotatorStanding.objects.create(project=project, annotator=slow, gold_judged=4,
                                     gold_score_sum=1.0, paused=True,
                                     flagged_at="2026-11-20T10:00:00Z")
    factories.user("mona", "Manager")
    login(page, live_server, "mona")
    page.goto(f"{live_server.url}/dashboard/{project.slug}/")
    page.get_by_role("link", name="Gold accuracy").click()
    row = page.locator('tr[data-annotator="sam"]')
    expect(row).to_contain_text("paused")
    expect(row).to_contain_text("25% of 4")
    shot(page, "quality")
    with page.expect_navigation():
        row.get_by_role("button", name="Resume").click()
    expect(page.locator(".messages")).to_contain_text("sam can annotate again")
    expect(page.locator('tr[data-annotator="sam"]')).to_contain_text("ok")
    assert queue.claim_next(project, slow) is not None
