"""Every judgement type on the work page, driven by the keyboard, checked against the DB.

Each test presses keys the way an annotator would (the scheme is the help dialog's) and then
reads back the stored Judgement (or Assignment/Candidate), not just what the page shows.
Screenshots for looking at are written only when PREFLAB_SHOTS_DIR is set.
"""

import os
import re
from pathlib import Path

import pytest

from annotate.models import Assignment, Candidate, Item, Judgement
from annotate.services import preference_rows
from tests import factories
from tests.browser.conftest import DESKTOP, card_ids, login, settled

expect = pytest.importorskip(
    "playwright.sync_api", reason="playwright is not installed (pip install -e '.[dev]')"
).expect

# The live server runs in another thread with its own connection: data must be committed.
pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

GUIDELINES = "# Judge kindly\n\nPrefer **short** answers that give the tracking link."
NARROW = {"width": 390, "height": 844}
SUBMIT_ROUTE = "**/annotate/*/submit/"
READY = re.compile(r"\bready\b")  # the submit button's look once nothing is missing


def make_project(n_prompts=3, n_candidates=3, **fields):
    fields.setdefault("guidelines", GUIDELINES)
    return factories.project_with_items(n_prompts=n_prompts, n_candidates=n_candidates, **fields)


def open_work(page, live_server, project, username="bea"):
    """Log a new annotator in and open the project's work page; returns the user."""
    user = factories.user(username, "Annotator")
    login(page, live_server, username)
    goto_work(page, live_server, project)
    return user


def goto_work(page, live_server, project):
    page.goto(f"{live_server.url}/annotate/{project.slug}/")
    wait_ready(page)


def wait_ready(page):
    form = page.locator("#judge-form")
    expect(form).to_be_visible()
    # annotate.js marks the form once it has wired it up; keys pressed earlier would be lost.
    expect(form).to_have_attribute("data-ready", "1")


def current_item(page):
    return int(page.locator("#judge-form").get_attribute("data-item"))


def press(page, *keys):
    for key in keys:
        page.keyboard.press(key)


def wait_for_next(page, item):
    """Wait until htmx has swapped in an item other than `item`, wired up."""
    form = page.locator("#judge-form")
    expect(form).not_to_have_attribute("data-item", str(item))
    wait_ready(page)


def submit_and_wait(page, key="Enter"):
    item = current_item(page)
    page.keyboard.press(key)
    wait_for_next(page, item)
    settled(page)
    return item


def tab_to(page, selector, limit=60):
    """Press Tab until the first element matching `selector` has the focus."""
    focused = "s => document.activeElement === document.querySelector(s)"
    for _ in range(limit):
        if page.evaluate(focused, selector):
            return
        page.keyboard.press("Tab")
    raise AssertionError(f"{limit} presses of Tab never reached {selector}")


def live_judgement(user, item):
    return Judgement.objects.get(annotator=user, item_id=item, retracted_at__isnull=True)


# ---------------------------------------------------------------- ranking


def test_it_stores_a_ranking_with_a_tie(page, live_server):
    user = open_work(page, live_server, make_project())
    c1, c2, c3 = shown = card_ids(page)
    press(page, "2", "3", "t")
    expect(page.locator("#ranking")).to_have_class("ranking ranked")
    expect(page.locator(f'#ranking li[data-id="{c3}"] .tie-mark')).to_be_visible()
    expect(page.locator(f'.candidate[data-id="{c3}"] .rank-badge')).to_have_text("#1")
    expect(page.locator(f'.candidate[data-id="{c1}"] .rank-badge')).to_have_text("#2")

    item = submit_and_wait(page)

    judgement = live_judgement(user, item)
    assert judgement.ranking == [[c2, c3], [c1]]
    assert judgement.shown_order == shown
    assert judgement.kinds == ["ranking"]


def test_it_moves_a_focused_ranking_row_with_the_arrow_keys(page, live_server):
    user = open_work(page, live_server, make_project())
    c1, c2, c3 = card_ids(page)
    tab_to(page, "#ranking li:first-child")
    page.keyboard.press("ArrowDown")
    expect(page.locator("#ranking")).to_have_class("ranking ranked")
    expect(page.locator("#ranking li").first).to_have_attribute("data-id", str(c2))
    # The moved row keeps the focus, so it can be moved on.
    expect(page.locator(f'#ranking li[data-id="{c1}"]')).to_be_focused()

    item = submit_and_wait(page)

    assert live_judgement(user, item).ranking == [[c2], [c1], [c3]]


# ---------------------------------------------------------------- pairwise


def test_it_stores_pairwise_choices_strength_tie_and_both_bad(page, live_server):
    user = open_work(page, live_server, make_project(n_candidates=2, judgement_kinds=["pairwise"]))
    expect(page.locator("#judge-form")).to_have_class("judge is-pairwise")
    expect(page.locator("#ranking")).to_have_count(0)

    a, b = card_ids(page)
    submit_button = page.locator("#submit-btn")
    expect(submit_button).not_to_have_class(READY)
    press(page, "b", "m")
    expect(submit_button).to_have_class(READY)
    expect(page.locator("input[name=choice][value=b]")).to_be_checked()
    expect(page.locator("input[name=strength][value='2']")).to_be_checked()
    item = submit_and_wait(page)
    judgement = live_judgement(user, item)
    assert (judgement.pairwise_choice, judgement.pairwise_strength) == ("b", 2)
    assert judgement.ranking == [[b], [a]]
    assert judgement.kinds == ["pairwise"]

    a, b = card_ids(page)
    page.keyboard.press("t")
    item = submit_and_wait(page)
    judgement = live_judgement(user, item)
    assert (judgement.pairwise_choice, judgement.pairwise_strength) == ("tie", None)
    assert judgement.ranking == [[a, b]]

    a, b = card_ids(page)
    page.keyboard.press("x")
    item = current_item(page)
    page.keyboard.press("Enter")
    expect(page.get_by_test_id("queue-empty")).to_be_visible()
    settled(page)
    judgement = live_judgement(user, item)
    assert judgement.pairwise_choice == "both_bad"
    assert judgement.ranking == [[a, b]]


# ---------------------------------------------------------------- ratings


def test_it_rates_with_digits_and_refuses_missing_ratings(page, live_server):
    project = make_project(
        n_candidates=2, judgement_kinds=["rating"], rating_dimensions=["helpfulness", "honesty"]
    )
    user = open_work(page, live_server, project)
    c1, c2 = card_ids(page)
    error = page.locator("#submit-error")

    tab_to(page, ".ratings input[type=radio]")
    page.keyboard.press("4")
    expect(page.locator(f'input[name="rating-{c1}-helpfulness"][value="4"]')).to_be_checked()
    # The digit moved the focus on to the next row.
    expect(page.locator(f'input[name="rating-{c1}-honesty"]').first).to_be_focused()
    page.keyboard.press("Enter")
    expect(error).to_be_visible()
    expect(error).to_contain_text("3 missing")
    assert not Judgement.objects.filter(annotator=user).exists()

    expect(page.locator("#submit-btn")).not_to_have_class(READY)
    press(page, "2", "5", "3")
    expect(page.locator("#submit-btn")).to_have_class(READY)
    item = submit_and_wait(page)

    judgement = live_judgement(user, item)
    assert judgement.ratings == {
        str(c1): {"helpfulness": 4, "honesty": 2},
        str(c2): {"helpfulness": 5, "honesty": 3},
    }
    assert judgement.kinds == ["rating"]


# ---------------------------------------------------------------- corrections


def test_it_stores_a_correction_typed_in_the_editor(page, live_server):
    project = make_project(n_candidates=2, judgement_kinds=["ranking", "correction"])
    user = open_work(page, live_server, project)
    c1, c2 = card_ids(page)
    original = Candidate.objects.get(pk=c1)
    card = page.locator(f'.candidate[data-id="{c1}"]')
    area = card.locator("textarea.edit-text")
    corrected = "Sorry for the wait! Your parcel is on its way: use the tracking link."

    press(page, "e", "1")
    expect(card.locator(".editor")).to_be_visible()
    expect(area).to_be_focused()
    page.keyboard.press("Control+A")
    page.keyboard.type(corrected)
    expect(area).to_have_value(corrected)
    expect(card.locator(".diff ins").first).to_be_visible()
    expect(card.locator(".diff del").first).to_be_visible()
    expect(card.locator(".diff ins", has_text="tracking")).to_have_count(1)

    page.keyboard.press("Escape")
    expect(area).not_to_be_focused()
    press(page, "1", "2")
    expect(page.locator("#ranking")).to_have_class("ranking ranked")
    item = submit_and_wait(page)

    judgement = live_judgement(user, item)
    assert judgement.ranking == [[c1], [c2]]
    fixed = Candidate.objects.get(origin=Candidate.Origin.CORRECTION)
    assert fixed.parent_id == original.pk
    assert fixed.text == corrected
    assert judgement.correction_id == fixed.pk
    assert "correction" in judgement.kinds
    pairs = {
        (r["chosen"][0]["content"], r["rejected"][0]["content"]) for r in preference_rows(project)
    }
    assert (corrected, original.text) in pairs


def test_it_restores_a_correction_draft_after_a_reload(page, live_server):
    project = make_project(n_candidates=2, judgement_kinds=["ranking", "correction"])
    open_work(page, live_server, project)
    assignment = page.locator("#judge-form").get_attribute("data-assignment")
    c2 = card_ids(page)[1]
    card = page.locator(f'.candidate[data-id="{c2}"]')
    press(page, "e", "2")
    expect(card.locator("textarea")).to_be_focused()
    page.keyboard.press("End")
    page.keyboard.type(" Draft words.")
    draft = card.locator("textarea").input_value()
    assert draft.endswith(" Draft words.")

    page.reload()
    wait_ready(page)

    expect(page.locator("#judge-form")).to_have_attribute("data-assignment", assignment)
    card = page.locator(f'.candidate[data-id="{c2}"]')
    expect(card.locator(".editor")).to_be_visible()
    expect(card).to_have_class("candidate editing")
    expect(card.locator("textarea")).to_have_value(draft)
    expect(card.locator(".diff ins", has_text="Draft")).to_have_count(1)


# ---------------------------------------------------------------- flags, comment, skip


def test_it_stores_flags_and_a_comment_and_submits_with_ctrl_enter(page, live_server):
    user = open_work(page, live_server, make_project())
    press(page, "3", "1")
    page.keyboard.press("f")
    first_flag = page.locator("input[name=flags]").first
    expect(first_flag).to_be_focused()
    page.keyboard.press(" ")
    page.keyboard.press("Tab")
    page.keyboard.press(" ")
    expect(page.locator("input[name=flags]:checked")).to_have_count(2)
    tab_to(page, "#comment", limit=5)
    page.keyboard.type("Both answers guess; the 3rd one is best.")
    item = submit_and_wait(page, "Control+Enter")

    judgement = live_judgement(user, item)
    assert judgement.flags == ["pii", "unsafe"]
    assert judgement.comment == "Both answers guess; the 3rd one is best."


def test_it_skips_an_item_with_a_reason_chosen_by_keyboard(page, live_server):
    project = make_project()
    user = open_work(page, live_server, project)
    item = current_item(page)
    page.keyboard.press("s")
    dialog = page.locator("#skip-dialog")
    expect(dialog).to_be_visible()
    reason = page.locator("#skip-reason")
    expect(reason).to_be_focused()
    page.keyboard.press("ArrowDown")
    expect(reason).to_have_value("broken")
    tab_to(page, "#skip-dialog button[type=submit]", limit=5)
    page.keyboard.press("Enter")
    wait_for_next(page, item)
    expect(page.get_by_test_id("notice")).to_contain_text("Skipped")

    assignment = Assignment.objects.get(annotator=user, item_id=item)
    assert assignment.status == Assignment.Status.SKIPPED
    assert assignment.skip_reason == "Broken or unreadable item"
    assert Item.objects.get(pk=item).open_slots == project.overlap
    assert not Judgement.objects.filter(annotator=user).exists()


# ---------------------------------------------------------------- undo


def test_it_undoes_within_the_window_only(page, live_server):
    project = make_project(n_prompts=4)
    user = open_work(page, live_server, project)
    c1, c2, c3 = card_ids(page)
    press(page, "1", "2")
    first = submit_and_wait(page)
    expect(page.locator("#undo-form")).to_be_visible()

    page.keyboard.press("u")
    expect(page.locator("#judge-form")).to_have_attribute("data-item", str(first))
    wait_ready(page)
    expect(page.get_by_test_id("notice")).to_contain_text("taken back")
    retracted = Judgement.objects.get(annotator=user, item_id=first)
    assert retracted.retracted_at is not None
    assert card_ids(page) == [c1, c2, c3]  # the same assignment, in the same order

    press(page, "3", "2")
    submit_and_wait(page)
    judgements = Judgement.objects.filter(assignment=retracted.assignment)
    assert judgements.count() == 2
    live = judgements.get(retracted_at__isnull=True)
    assert live.ranking == [[c3], [c2], [c1]]

    # Past the window the bar removes itself and "u" takes nothing back.
    project.undo_seconds = 1
    project.save(update_fields=["undo_seconds"])
    press(page, "1", "2")
    second = submit_and_wait(page)
    expect(page.locator("#undo-form")).to_be_visible()
    page.wait_for_function("() => !document.getElementById('undo-form')", timeout=5_000)
    posts = []
    page.on("request", lambda r: posts.append(r.url) if r.method == "POST" else None)
    page.keyboard.press("u")
    page.evaluate("() => new Promise(requestAnimationFrame)")  # let any handler run
    assert [url for url in posts if "/undo/" in url] == []
    expect(page.locator("#judge-form")).not_to_have_attribute("data-item", str(second))
    assert not Judgement.objects.filter(item_id=second, retracted_at__isnull=False).exists()


# ---------------------------------------------------------------- offline resend


def test_it_resends_a_judgement_once_the_server_is_back(page, live_server):
    user = open_work(page, live_server, make_project())

    def unreachable(route):
        route.abort()

    page.route(SUBMIT_ROUTE, unreachable)
    c1, c2, c3 = card_ids(page)
    item = current_item(page)
    press(page, "2", "1", "Enter")
    banner = page.locator("#offline-banner")
    expect(banner).to_be_visible()
    expect(banner).to_contain_text("cannot be reached")
    assert not Judgement.objects.exists()

    page.unroute(SUBMIT_ROUTE, unreachable)
    expect(banner).to_be_hidden(timeout=20_000)
    wait_for_next(page, item)
    settled(page)
    assert Judgement.objects.filter(annotator=user).count() == 1
    assert live_judgement(user, item).ranking == [[c2], [c1], [c3]]
    assert page.evaluate("localStorage.getItem('preflab-pending-submit')") is None

    # A double Enter on the next item stores it once.
    item = current_item(page)
    press(page, "1", "2", "Enter", "Enter")
    wait_for_next(page, item)
    settled(page)
    expect(page.get_by_test_id("done-today")).to_have_text("2")
    assert Judgement.objects.filter(annotator=user, item_id=item).count() == 1
    assert Judgement.objects.filter(annotator=user).count() == 2


# ---------------------------------------------------------------- dialogs


def test_it_opens_the_guidelines_and_the_shortcuts(page, live_server):
    open_work(page, live_server, make_project())
    guidelines = page.locator("#guidelines-dialog")
    page.keyboard.press("g")
    expect(guidelines).to_be_visible()
    expect(guidelines.locator(".md h1")).to_have_text("Judge kindly")
    expect(guidelines.locator(".md strong")).to_have_text("short")
    page.keyboard.press("Escape")
    expect(guidelines).to_be_hidden()

    help_dialog = page.locator("#help-dialog")
    page.keyboard.press("?")
    expect(help_dialog).to_be_visible()
    expect(help_dialog).to_contain_text("Keyboard shortcuts")
    page.keyboard.press("Escape")
    expect(help_dialog).to_be_hidden()
    # Keys work again once the dialogs are closed.
    page.keyboard.press("2")
    expect(page.locator("#ranking li.placed")).to_have_count(1)


# ---------------------------------------------------------------- screenshots


def test_screenshots_of_every_judgement_type(page, live_server):
    """Pictures for people to look at, written only when PREFLAB_SHOTS_DIR is set."""
    shots = os.environ.get("PREFLAB_SHOTS_DIR")
    if not shots:
        pytest.skip("set PREFLAB_SHOTS_DIR to write screenshots of the judgement types")
    shots = Path(shots)
    shots.mkdir(parents=True, exist_ok=True)
    dims = {"rating_dimensions": ["helpfulness", "honesty", "harmlessness"]}
    projects = {
        "ranking": make_project(slug="shots-ranking"),
        "pairwise": make_project(
            slug="shots-pairwise", n_candidates=2, judgement_kinds=["pairwise"]
        ),
        "rating": make_project(
            slug="shots-rating", n_candidates=2, judgement_kinds=["rating"], **dims
        ),
        "correction": make_project(
            slug="shots-correction", judgement_kinds=["ranking", "correction"]
        ),
    }
    factories.user("bea", "Annotator")
    login(page, live_server, "bea")
    for kind, project in projects.items():
        page.set_viewport_size(DESKTOP)
        goto_work(page, live_server, project)
        if kind == "ranking":
            press(page, "2", "3", "t")
        elif kind == "pairwise":
            press(page, "b", "m")
        elif kind == "rating":
            tab_to(page, ".ratings input[type=radio]")
            press(page, "4", "2", "5")
        else:
            press(page, "e", "1", "End")
            page.keyboard.type(" Track it here: example.com/track.")
            press(page, "Escape", "1")
        page.screenshot(path=str(shots / f"{kind}-1280.png"), full_page=True)
        page.set_viewport_size(NARROW)
        page.screenshot(path=str(shots / f"{kind}-390.png"), full_page=True)
