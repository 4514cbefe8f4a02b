"""Submit → next item without waiting: the next item is prefetched and the POST goes behind."""

import pytest

from annotate.models import Assignment, Judgement
from tests import factories
from tests.browser.conftest import login

expect = pytest.importorskip("playwright.sync_api").expect
pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_it_shows_the_prefetched_item_before_the_server_answers(page, live_server, project):
    factories.user("pia", "Annotator")
    login(page, live_server, "pia")
    with page.expect_response(lambda r: "/prefetch/" in r.url) as prefetched:
        page.goto(f"{live_server.url}/annotate/{project.slug}/")
    assert prefetched.value.ok
    form = page.locator("#judge-form")
    expect(form).to_have_attribute("data-ready", "1")
    first_item = form.get_attribute("data-item")
    ids = page.locator("#judge-form .candidate").evaluate_all("cs => cs.map(c => +c.dataset.id)")

    held = []
    page.route("**/annotate/*/submit/", lambda route: held.append(route))
    page.keyboard.press("3")
    page.keyboard.press("1")
    page.keyboard.press("Enter")
    # The next item is on screen while the submission is still held back.
    expect(form).not_to_have_attribute("data-item", first_item)
    expect(page.locator("[data-testid=done-today]")).to_have_text("1")
    page.wait_for_function("() => true")  # let the route handler record the request
    assert len(held) == 1 and not Judgement.objects.exists()
    held[0].continue_()
    expect(page.locator("#undo-form")).to_be_visible()
    judgement = Judgement.objects.get()
    assert judgement.ranking == [[ids[2]], [ids[0]], [ids[1]]]
    assert str(judgement.item_id) == first_item
    shown = int(form.get_attribute("data-item"))
    assert Assignment.objects.get(item_id=shown, annotator__username="pia").status == "active"
