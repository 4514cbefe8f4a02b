"""The API tokens page: list, create (shown once), revoke; only the owner's tokens."""

import hashlib

from django.urls import reverse

from annotate.models import ApiToken
from annotate.tokens import create_token, verify_token


def test_it_creates_a_token_shown_once_and_stores_only_its_digest(client, annotator):
    client.force_login(annotator)
    response = client.post(reverse("annotate-tokens"), {"name": "support bot"})
    assert response.status_code == 200
    assert "no-store" in response["Cache-Control"]
    token = ApiToken.objects.get(user=annotator)
    raw = response.context["created"]["raw"]
    html = response.content.decode()
    assert raw.startswith("pfl_") and raw in html
    assert "shown only once" in html
    assert token.name == "support bot" and raw.startswith(token.prefix)
    assert token.digest == hashlib.sha256(raw.encode()).hexdigest()
    assert raw not in (token.name, token.prefix, token.digest)
    # The next visit lists it by name and prefix, never the token itself.
    html = client.get(reverse("annotate-tokens")).content.decode()
    assert "support bot" in html and token.prefix in html and raw not in html
    assert "never" in html and "active" in html


def test_it_refuses_a_token_without_a_name(client, engineer):
    client.force_login(engineer)
    response = client.post(reverse("annotate-tokens"), {"name": "  "})
    assert response.status_code == 400
    assert "Give the token a name" in response.content.decode()
    assert not ApiToken.objects.exists()


def test_it_escapes_the_token_name(client, engineer):
    client.force_login(engineer)
    client.post(reverse("annotate-tokens"), {"name": "<script>alert(1)</script>"})
    html = client.get(reverse("annotate-tokens")).content.decode()
    assert "<script>alert(1)</script>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html


def test_it_revokes_the_owners_token_at_once(client, engineer):
    token, raw = create_token(engineer, "ci")
    assert verify_token(raw) is not None
    client.force_login(engineer)
    response = client.post(reverse("annotate-token-revoke", args=[token.pk]), follow=True)
    token.refresh_from_db()
    assert token.revoked_at is not None
    assert verify_token(raw) is None
    html = response.content.decode()
    assert "revoked" in html and "now get 401" in html


def test_it_lists_only_the_users_own_tokens(client, engineer, manager):
    create_token(manager, "maya's token")
    client.force_login(engineer)
    html = client.get(reverse("annotate-tokens")).content.decode()
    assert "maya&#x27;s token" not in html and "maya's token" not in html
    assert "No tokens yet" in html


def test_it_does_not_let_another_user_revoke_a_token(client, engineer, manager):
    token, raw = create_token(manager, "maya's token")
    client.force_login(engineer)
    response = client.post(reverse("annotate-token-revoke", args=[token.pk]))
    assert response.status_code == 404
    token.refresh_from_db()
    assert token.revoked_at is None and verify_token(raw) is not None


def test_it_revokes_only_by_post(client, engineer):
    token, _ = create_token(engineer, "ci")
    client.force_login(engineer)
    assert client.get(reverse("annotate-token-revoke", args=[token.pk])).status_code == 405
    token.refresh_from_db()
    assert token.revoked_at is None


def test_it_sends_anonymous_visitors_to_log_in(client, engineer):
    token, _ = create_token(engineer, "ci")
    for response in (client.get(reverse("annotate-tokens")),
                     client.post(reverse("annotate-tokens"), {"name": "x"}),
                     client.post(reverse("annotate-token-revoke", args=[token.pk]))):
        assert response.status_code == 302 and "/accounts/login/" in response["Location"]
    assert ApiToken.objects.count() == 1
    token.refresh_from_db()
    assert token.revoked_at is None


def test_it_is_linked_in_the_nav(client, annotator):
    client.force_login(annotator)
    assert reverse("annotate-tokens") in client.get(reverse("home")).content.decode()


def test_it_needs_the_csrf_token_to_revoke(engineer):
    from django.test import Client

    token, _ = create_token(engineer, "ci")
    client = Client(enforce_csrf_checks=True)
    client.force_login(engineer)
    response = client.post(reverse("annotate-token-revoke", args=[token.pk]))
    assert response.status_code == 403
    token.refresh_from_db()
    assert token.revoked_at is None
