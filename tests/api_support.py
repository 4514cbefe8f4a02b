"""Helpers for API tests: bearer headers from real tokens, response bodies."""

import json

from annotate.tokens import create_token, revoke_token


def bearer(user, name="tests"):
    """Headers for the Django test client that authenticate as `user` with a new token."""
    _, raw = create_token(user, name)
    return {"HTTP_AUTHORIZATION": f"Bearer {raw}"}


def revoked_bearer(user):
    """Headers carrying a token of `user` that was revoked."""
    token, raw = create_token(user, "revoked")
    revoke_token(user, token.pk)
    return {"HTTP_AUTHORIZATION": f"Bearer {raw}"}


def body(response):
    """The response body as bytes, streamed or not."""
    return response.getvalue() if response.streaming else response.content


def detail(response):
    """The `detail` of a JSON error answer."""
    return json.loads(response.content)["detail"]
