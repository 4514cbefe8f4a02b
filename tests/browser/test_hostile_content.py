"""Hostile prompts and model outputs in a real browser: shown as text, nothing runs."""

import pytest

from annotate.importing import create_item
from annotate.models import Candidate, Judgement
from tests import factories
from tests.browser.conftest import login, settled

expect = pytest.importorskip(
    "playwright.sync_api", reason="playwright is not installed (pip install -e '.[dev]')"
).expect

# The live server runs in another thread with its own connection: data must be committed.
pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

SCRIPT = "<script>window.__pwned = 1; alert('script')</script>"
IMG = "<img src=x onerror=\"window.__pwned = 1; alert('img')\">"
HTML_LINK = "<a href=\"javascript:window.__pwned=1\">html link</a>"
MD_LINK = "[md link](javascript:window.__pwned=1)"
MD_LINK_UPPER = "[upper link](JAVASCRIPT:alert('upper'))"
HOSTILE = "\n\n".join([SCRIPT, IMG, HTML_LINK, MD_LINK, MD_LINK_UPPER])
PROMPT = f"My order is late.\n\n{HOSTILE}"
LONG_LINE = "x = " + "'y' + " * 80 + "'z'"
CANDIDATE = f"Sorry about that!\n\n{HOSTILE}\n\n```python\nprint('<b>ok</b>')\n{LONG_LINE}\n```"
LINK_TEXTS = ["html link", "md link", "upper link"]


@pytest.fixture
def hostile_project(db):
    """Two items, each with a hostile prompt and one hostile candidate among plain ones."""
    proj = factories.project("hostile")
    for i in range(2):
        prompt = factories.prompt(proj, PROMPT, f"h{i}")
        texts = [CANDIDATE, f"Plain answer {i}. See [the docs](https://example.com/docs).",
                 f"**Bold** answer {i}."]
        cands = [Candidate.objects.create(prompt=prompt, text=text) for text in texts]
        create_item(proj, prompt, cands)
    return proj


def test_it_shows_hostile_content_as_text_and_runs_none_of_it(page, live_server,
                                                               hostile_project):
    user = factories.user("hal", "Annotator")
    dialogs = []

    def on_dialog(dialog):
        dialogs.append(dialog.message)
        dialog.dismiss()

    page.on("dialog", on_dialog)
    login(page, live_server, "hal")
    page.goto(f"{live_server.url}/annotate/{hostile_project.slug}/")
    form = page.locator("#judge-form")
    expect(form).to_have_attribute("data-ready", "1")
    assert page.evaluate("typeof window.__pwned") == "undefined"
    assert dialogs == []

    transcript = page.locator(".transcript .bubble.md")
    hostile_card = page.locator(".candidate-text.md", has_text="Sorry about that!")
    for area in (transcript, hostile_card):
        for fragment in (SCRIPT, IMG, HTML_LINK, MD_LINK):
            expect(area).to_contain_text(fragment)
    # Markdown still renders: the code block is highlighted and the plain link is a link.
    expect(hostile_card.locator("pre code.highlight span").first).to_be_visible()
    docs = page.get_by_role("link", name="the docs")
    expect(docs).to_have_attribute("rel", "noopener noreferrer nofollow")
    assert docs.get_attribute("target") is None
    # A long code line scrolls inside its block instead of widening the page.
    assert page.evaluate("document.documentElement.scrollWidth - window.innerWidth") <= 0

    md = page.locator(".md")
    assert md.locator("script, img, iframe, svg, style").count() == 0
    hrefs = md.locator("a[href]").evaluate_all("links => links.map(a => a.href)")
    assert all(href.startswith(("http:", "https:", "mailto:")) for href in hrefs), hrefs
    # Were any of the script links rendered as links, following them must still do nothing.
    for text in LINK_TEXTS:
        links = md.get_by_role("link", name=text)
        for i in range(links.count()):
            links.nth(i).click()
    page.get_by_text(MD_LINK).first.click()

    assert page.evaluate("typeof window.__pwned") == "undefined"
    assert dialogs == []

    # Ranking and submitting work as usual; the next item (hostile too) arrives by htmx, which
    # would run inline scripts in swapped-in HTML had any survived.
    item = form.get_attribute("data-item")
    page.keyboard.press("3")
    page.keyboard.press("1")
    page.keyboard.press("Enter")
    expect(form).not_to_have_attribute("data-item", item)
    expect(form).to_have_attribute("data-ready", "1")
    expect(page.locator(".candidate-text.md", has_text="Sorry about that!")).to_contain_text(
        SCRIPT
    )
    settled(page)
    assert Judgement.objects.filter(annotator=user).count() == 1
    assert page.evaluate("typeof window.__pwned") == "undefined"
    assert dialogs == []
