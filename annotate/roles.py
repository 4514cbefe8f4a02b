"""Roles are Django groups; a superuser has every role."""

from functools import wraps

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied

ANNOTATOR = "Annotator"
ENGINEER = "Engineer"
MANAGER = "Manager"
REVIEWER = "Reviewer"
ALL_ROLES = (ANNOTATOR, ENGINEER, MANAGER, REVIEWER)


def user_roles(user):
    """Return the set of role names the user holds."""
    if not user.is_authenticated:
        return set()
    if user.is_superuser:
        return set(ALL_ROLES)
    cached = getattr(user, "_preflab_roles", None)
    if cached is None:
        cached = set(user.groups.filter(name__in=ALL_ROLES).values_list("name", flat=True))
        user._preflab_roles = cached
    return cached


def has_role(user, *roles):
    return bool(user_roles(user) & set(roles))


def role_required(*roles):
    """Require login and one of `roles`; anyone else gets 403."""

    def decorator(view):
        @wraps(view)
        @login_required
        def wrapper(request, *args, **kwargs):
            if not has_role(request.user, *roles):
                raise PermissionDenied(f"This page needs the {' or '.join(roles)} role.")
            return view(request, *args, **kwargs)

        return wrapper

    return decorator
