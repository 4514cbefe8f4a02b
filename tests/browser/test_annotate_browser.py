"""The annotator's work page in a real browser: keyboard ranking, drag and drop, htmx swaps."""

import os
from pathlib import Path

import pytest

from annotate.models import Judgement
from tests import factories
from tests.browser.conftest import card_ids, login, settled

expect = pytest.importorskip(
    "playwright.sync_api", reason="playwright is not installed (pip install -e '.[dev]')"
).expect

# The live server runs in another thread with its own connection: data must be committed.
pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

INCOMPLETE = "Rank every response first"


@pytest.fixture
def annotator_page(page, live_server, project):
    """A logged-in annotator on the project's work page; returns (page, user)."""
    user = factories.user("bea", "Annotator")
    login(page, live_server, "bea")
    page.goto(f"{live_server.url}/annotate/{project.slug}/")
    expect(page.locator("#judge-form")).to_be_visible()
    # annotate.js marks the form once it has wired it up; keys pressed earlier would be lost.
    expect(page.locator("#judge-form")).to_have_attribute("data-ready", "1")
    return page, user


def ranking_list_ids(page):
    return [
        int(x)
        for x in page.locator("#ranking li").evaluate_all("lis => lis.map(li => li.dataset.id)")
    ]


def submit_and_wait_for_next(page):
    """Press Enter and wait until htmx has swapped in a different item."""
    form = page.locator("#judge-form")
    item = form.get_attribute("data-item")
    page.keyboard.press("Enter")
    expect(form).to_be_visible()
    expect(form).not_to_have_attribute("data-item", item)
    expect(form).to_have_attribute("data-ready", "1")
    settled(page)


def test_it_ranks_with_number_keys_and_submits_without_a_reload(annotator_page):
    page, user = annotator_page
    page.evaluate("window.__marker = 1")
    shown = card_ids(page)
    assert len(shown) == 3

    page.keyboard.press("2")
    page.keyboard.press("3")
    expect(page.locator("#ranking")).to_have_class("ranking ranked")
    assert ranking_list_ids(page) == [shown[1], shown[2], shown[0]]
    expect(page.locator(f'.candidate[data-id="{shown[1]}"] .rank-badge')).to_have_text("#1")

    submit_and_wait_for_next(page)

    assert page.evaluate("window.__marker") == 1
    judgement = Judgement.objects.get(annotator=user)
    assert judgement.ranking == [[shown[1]], [shown[2]], [shown[0]]]
    assert judgement.shown_order == shown
    assert judgement.duration_ms and judgement.duration_ms > 0
    # The swapped-in item works with the keyboard too (its state was initialised).
    expect(page.locator("#ranking")).not_to_have_class("ranking ranked")


def test_it_undoes_and_resets_picks(annotator_page):
    page, _ = annotator_page
    shown = card_ids(page)
    page.keyboard.press("3")
    page.keyboard.press("1")
    page.keyboard.press("Backspace")
    expect(page.locator("#ranking li.placed")).to_have_count(1)
    assert ranking_list_ids(page)[0] == shown[2]
    page.keyboard.press("Escape")
    expect(page.locator("#ranking li.placed")).to_have_count(0)
    assert ranking_list_ids(page) == shown


def test_it_refuses_an_incomplete_ranking_and_stores_nothing(annotator_page):
    page, user = annotator_page
    posts = []
    page.on("request", lambda r: posts.append(r.url) if r.method == "POST" else None)
    error = page.locator("#submit-error")
    expect(error).to_be_hidden()

    page.keyboard.press("2")
    page.keyboard.press("Enter")
    expect(error).to_be_visible()
    expect(error).to_contain_text(INCOMPLETE)
    page.click("#submit-btn")  # the button goes through the same check
    expect(error).to_contain_text(INCOMPLETE)
    assert not Judgement.objects.filter(annotator=user).exists()

    # Completing the ranking then submits exactly once: the refused attempts sent nothing.
    page.keyboard.press("1")
    expect(error).to_be_visible()  # still shown until reset or a new item
    submit_and_wait_for_next(page)
    assert len([url for url in posts if url.endswith("/submit/")]) == 1
    assert Judgement.objects.filter(annotator=user).count() == 1


def test_it_ranks_by_drag_and_drop(annotator_page):
    page, user = annotator_page
    shown = card_ids(page)
    # Drag the last response to the top of the list (Sortable uses native HTML5 drag here).
    items = page.locator("#ranking li")
    items.nth(2).drag_to(items.nth(0), target_position={"x": 20, "y": 4})
    expect(page.locator("#ranking")).to_have_class("ranking ranked")
    dragged = ranking_list_ids(page)
    assert dragged == [shown[2], shown[0], shown[1]]

    submit_and_wait_for_next(page)

    judgement = Judgement.objects.get(annotator=user)
    assert judgement.ranking == [[cid] for cid in dragged]


def test_it_counts_the_judgements_done_today(annotator_page):
    page, _ = annotator_page
    done = page.get_by_test_id("done-today")
    expect(done).to_have_text("0")
    page.keyboard.press("1")
    page.keyboard.press("2")
    submit_and_wait_for_next(page)
    expect(done).to_have_text("1")
    page.keyboard.press("3")
    page.keyboard.press("2")
    submit_and_wait_for_next(page)
    expect(done).to_have_text("2")


def test_it_logs_in_with_the_right_password_only(page, live_server, db):
    factories.user("carl", "Annotator")
    login(page, live_server, "carl", "not-the-password")
    expect(page.locator("main .error")).to_contain_text("didn't match")
    assert page.url.startswith(f"{live_server.url}/accounts/login/")

    login(page, live_server, "carl", "pw-for-tests")
    assert page.url == f"{live_server.url}/"
    expect(page.locator("h1")).to_have_text("Projects")
    expect(page.locator(".topbar .who")).to_contain_text("carl")


def test_it_lays_out_the_work_page_on_wide_and_narrow_screens(
    annotator_page, live_server, tmp_path
):
    """Also writes screenshots, to PREFLAB_SHOTS_DIR when set (for looking at them)."""
    page, _ = annotator_page
    shots = Path(os.environ.get("PREFLAB_SHOTS_DIR") or tmp_path)
    shots.mkdir(parents=True, exist_ok=True)
    page.keyboard.press("2")

    panel = page.locator(".ranking-panel")
    cands = page.locator(".candidates")
    box, cbox = panel.bounding_box(), cands.bounding_box()
    tbox = page.locator(".transcript").bounding_box()
    assert box["x"] >= cbox["x"] + cbox["width"]  # wide: the panel sits beside the responses
    # ...and its height does not push the responses away from the conversation.
    assert cbox["y"] - (tbox["y"] + tbox["height"]) <= 24
    page.screenshot(path=str(shots / "work-1280.png"), full_page=True)

    page.set_viewport_size({"width": 390, "height": 844})
    box, cbox = panel.bounding_box(), cands.bounding_box()
    assert box["y"] >= cbox["y"] + cbox["height"]  # narrow: the panel comes below them
    overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
    assert overflow <= 0, f"the page scrolls sideways by {overflow}px at 390px wide"
    page.screenshot(path=str(shots / "work-390.png"), full_page=True)

    page.set_viewport_size({"width": 1280, "height": 900})
    page.goto(f"{live_server.url}/")
    page.screenshot(path=str(shots / "home.png"), full_page=True)
    page.context.clear_cookies()
    page.goto(f"{live_server.url}/accounts/login/")
    page.screenshot(path=str(shots / "login.png"), full_page=True)


def test_it_stores_a_double_enter_once(annotator_page):
    page, user = annotator_page
    first_item = int(page.locator("#judge-form").get_attribute("data-item"))
    page.keyboard.press("1")
    page.keyboard.press("2")
    page.keyboard.press("Enter")
    page.keyboard.press("Enter")
    form = page.locator("#judge-form")
    expect(form).not_to_have_attribute("data-item", str(first_item))
    expect(page.get_by_test_id("done-today")).to_have_text("1")
    settled(page)
    assert Judgement.objects.filter(annotator=user).count() == 1
    assert Judgement.objects.get(annotator=user).item_id == first_item
