"""The API's interactive docs in a real browser: vendored Swagger UI renders the schema."""

import pytest

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_the_docs_page_lists_the_operations_without_errors(page, live_server):
    requests = []
    page.on("request", lambda request: requests.append(request.url))
    page.goto(f"{live_server.url}/api/docs")
    page.wait_for_selector(".opblock-summary-path")
    paths = page.locator(".opblock-summary-path").all_inner_texts()
    assert any("/api/projects/{slug}/conversations" in p for p in paths)
    assert any("/api/projects/{slug}/loop/timeline" in p for p in paths)
    assert page.locator(".errors-wrapper").count() == 0
    # Everything the page loads comes from this server (no CDN).
    assert requests and all(url.startswith(live_server.url) for url in requests)
