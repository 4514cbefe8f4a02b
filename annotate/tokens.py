"""Personal API tokens: create (shown once), verify, revoke. Only SHA-256 digests are stored."""

import hashlib
import secrets
from datetime import timedelta

from django.db.models import Q
from django.utils import timezone

from .models import ApiToken

PREFIX = "pfl_"
# Shown in the token list so a user can tell tokens apart; reveals 8 of ~43 random characters.
SHOWN_CHARS = len(PREFIX) + 8
# last_used_at is written at most this often per token, so busy clients cost no extra writes.
TOUCH_EVERY = timedelta(minutes=1)
MAX_ACTIVE = 50


class TokenError(ValueError):
    """The token cannot be created; the message says why."""


def digest(raw: str) -> str:
    return hashlib.sha256(raw.encode("utf-8")).hexdigest()


def create_token(user, name: str) -> tuple[ApiToken, str]:
    """Create a token for the user; return it with the raw token, which is never stored."""
    name = (name or "").strip()
    if not name:
        raise TokenError("Give the token a name, e.g. the script or service that uses it.")
    if len(name) > ApiToken._meta.get_field("name").max_length:
        raise TokenError("The name is too long (at most 100 characters).")
    if ApiToken.objects.filter(user=user, revoked_at__isnull=True).count() >= MAX_ACTIVE:
        raise TokenError(f"You have {MAX_ACTIVE} active tokens; revoke one first.")
    raw = PREFIX + secrets.token_urlsafe(32)
    token = ApiToken.objects.create(user=user, name=name, prefix=raw[:SHOWN_CHARS],
                                    digest=digest(raw))
    return token, raw


def verify_token(raw: str, now=None) -> ApiToken | None:
    """Return the active token (with its user) for a raw token, or None; note its use."""
    if not raw or not raw.startswith(PREFIX) or len(raw) > 200:
        return None
    token = (
        ApiToken.objects.select_related("user")
        .filter(digest=digest(raw), revoked_at__isnull=True, user__is_active=True)
        .first()
    )
    if token is None:
        return None
    now = now or timezone.now()
    if token.last_used_at is None or now - token.last_used_at >= TOUCH_EVERY:
        # A conditional update: concurrent requests write once.
        ApiToken.objects.filter(pk=token.pk).filter(
            Q(last_used_at__isnull=True) | Q(last_used_at__lte=now - TOUCH_EVERY)
        ).update(last_used_at=now)
        token.last_used_at = now
    return token


def revoke_token(user, token_id) -> ApiToken | None:
    """Revoke one of the user's own tokens (at once); None when it is not theirs."""
    token = ApiToken.objects.filter(pk=token_id, user=user).first()
    if token is None:
        return None
    if token.revoked_at is None:
        token.revoked_at = timezone.now()
        token.save(update_fields=["revoked_at"])
    return token
