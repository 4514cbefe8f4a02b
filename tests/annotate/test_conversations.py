"""The production conversations page: scrubbed text, feedback, PII counts, item links."""

import pytest
from django.urls import reverse

from annotate.ingestion import ingest
from annotate.views_conversations import PER_PAGE
from tests import factories

EMAIL = "sam.lee@example.org"


def received(n, thumb="down", prefix="c"):
    return [{
        "external_id": f"{prefix}{i}",
        "messages": [{"role": "user", "content": f"I am Sam Lee, mail me at {EMAIL} <b>now</b>"}],
        "reply": f"Reply number {i}.",
        "feedback": {"thumb": thumb, "comment": "<script>alert(1)</script>"},
        "customer": {"name": "Sam Lee"},
    } for i in range(n)]


@pytest.fixture
def shop(db):
    project = factories.project("shop")
    ingest(project, received(3))
    return project


@pytest.fixture
def url(shop):
    return reverse("annotate-conversations", args=[shop.slug])


def test_it_lists_scrubbed_conversations_for_engineers(client, engineer, shop, url):
    client.force_login(engineer)
    response = client.get(url)
    page = response.content.decode()
    assert response.status_code == 200
    assert "[EMAIL]" in page and "[NAME]" in page
    assert EMAIL not in page and "Sam Lee" not in page
    assert "EMAIL 1" in page and "Thumbs down" in page
    # No reviewer role: the item is named, not linked.
    assert "Item " in page and "/review/" not in page
    # Untrusted text is escaped.
    assert "<script>alert(1)" not in page and "&lt;b&gt;now" in page


def test_managers_get_links_to_the_items(client, manager, shop, url):
    client.force_login(manager)
    page = client.get(url).content.decode()
    item_id = shop.conversations.first().item_id
    assert reverse("annotate-review-item", args=[shop.slug, item_id]) in page


def test_annotators_are_refused(client, annotator, url):
    client.force_login(annotator)
    assert client.get(url).status_code == 403


def test_outsiders_are_sent_to_log_in(client, url):
    response = client.get(url)
    assert response.status_code == 302 and "/accounts/login/" in response["Location"]


def test_it_pages_and_filters_by_feedback(client, engineer, shop, url):
    ingest(shop, received(PER_PAGE, thumb="up", prefix="u"))
    client.force_login(engineer)
    first = client.get(url).content.decode()
    assert "Page 1 of 2" in first
    ups = client.get(url, {"feedback": "up"}).content.decode().split("<table")[-1]
    assert ups.count("fb-up") == PER_PAGE and "fb-down" not in ups and "Page 1 of" not in ups
    second = client.get(url, {"page": 2}).content.decode()
    assert "Page 2 of 2" in second
    assert 'href="?feedback=&amp;page=1"' in second and "Next" not in second
    ingest(shop, received(3, thumb="up", prefix="more"))
    ups = client.get(url, {"feedback": "up"}).content.decode()
    assert 'href="?feedback=up&amp;page=2"' in ups  # the filter survives paging


def test_it_says_when_nothing_was_received(client, engineer, db):
    empty = factories.project("empty")
    client.force_login(engineer)
    page = client.get(reverse("annotate-conversations", args=[empty.slug])).content.decode()
    assert 'data-testid="conversations-empty"' in page


def test_an_unknown_project_is_404(client, engineer, db):
    client.force_login(engineer)
    assert client.get(reverse("annotate-conversations", args=["nope"])).status_code == 404


def test_the_project_page_counts_them(client, engineer, shop):
    client.force_login(engineer)
    page = client.get(reverse("annotate-project", args=[shop.slug])).content.decode()
    assert 'data-testid="conversation-count">3<' in page
    assert reverse("annotate-conversations", args=[shop.slug]) in page
