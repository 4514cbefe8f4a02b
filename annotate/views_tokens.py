"""The API tokens page: list, create (shown once), revoke."""

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404
from django.shortcuts import redirect, render
from django.utils.cache import add_never_cache_headers
from django.views.decorators.http import require_POST

from .models import ApiToken
from .tokens import TokenError, create_token, revoke_token


@login_required
def tokens(request):
    created = error = None
    status = 200
    if request.method == "POST":
        try:
            token, raw = create_token(request.user, request.POST.get("name", ""))
        except TokenError as exc:
            error, status = str(exc), 400
        else:
            created = {"token": token, "raw": raw}
    context = {
        "tokens": ApiToken.objects.filter(user=request.user),
        "created": created,
        "error": error,
        "name": request.POST.get("name", "") if error else "",
    }
    response = render(request, "annotate/tokens.html", context, status=status)
    # The page may carry a freshly created token: keep it out of every cache.
    add_never_cache_headers(response)
    return response


@login_required
@require_POST
def token_revoke(request, pk):
    token = revoke_token(request.user, pk)
    if token is None:
        raise Http404("No such token.")
    messages.success(request, f"Token “{token.name}” revoked: requests using it now get 401.")
    return redirect("annotate-tokens")
