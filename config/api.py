"""The REST API under /api/: schema at /api/openapi.json, docs at /api/docs."""

from django.core.exceptions import PermissionDenied, RequestDataTooBig, SuspiciousOperation
from django.http import Http404
from ninja import NinjaAPI, Swagger
from ninja.errors import AuthenticationError, ValidationError

from annotate.api import TokenAuth
from annotate.api import router as annotate_router
from rlhf.api import router as rlhf_router
from rlhf.services import BrokerUnavailable, InvalidRun

DESCRIPTION = """
Personal tokens authenticate every call: create one at **/accounts/tokens/** and send it as
`Authorization: Bearer pfl_…`. A token acts with its user's roles and sees the projects the
user sees in the browser; a revoked token gets 401 at once.

Roles (the same rules as the browser pages):

- **Annotator, Reviewer**: list and read the projects that admit them (open ones and those they
  are assigned to); read their own judgements.
- **Manager**: read every project, its items, judgements, export, runs, run metrics and model
  versions; download models. No imports, ingestion, launches, cancels or promotions.
- **Engineer**: everything a manager may, plus import prompts, ingest conversations, launch and
  cancel runs, promote model versions.
- **superuser**: everything.

Errors are JSON `{"detail": "…"}`: 400 bad input (with `errors` for line-numbered import
errors), 401 missing, unknown or revoked token, 403 the role does not allow it, 404 unknown
(or invisible) project, run or model, 409 the run already finished, 503 the task queue is
unreachable (the run is kept as FAILED with the reason). Lists are paginated:
`?page=1&page_size=50` (at most 200), answered as `{"items": [...], "count": n}`.
"""

api = NinjaAPI(
    title="preflab",
    version="1",
    description=DESCRIPTION,
    urls_namespace="api",
    auth=TokenAuth(),
    # ninja is in INSTALLED_APPS, so the docs page loads its bundled Swagger UI from /static/.
    docs=Swagger(settings={"persistAuthorization": True}),
)
api.add_router("", annotate_router)
api.add_router("", rlhf_router)


def _detail(request, status, detail, **extra):
    return api.create_response(request, {"detail": detail, **extra}, status=status)


def _where(error):
    return ".".join(str(part) for part in error.get("loc", ()))


@api.exception_handler(ValidationError)
def invalid_input(request, exc):
    errors = [f"{_where(e)}: {e.get('msg', 'invalid')}" for e in exc.errors]
    return _detail(request, 400, "Invalid input: " + "; ".join(errors[:10]), errors=errors)


@api.exception_handler(AuthenticationError)
def unauthenticated(request, exc):
    response = _detail(request, 401, "Send a valid API token: Authorization: Bearer <token> "
                       "(create one at /accounts/tokens/).")
    response["WWW-Authenticate"] = 'Bearer realm="preflab"'
    return response


@api.exception_handler(Http404)
def not_found(request, exc):
    return _detail(request, 404, str(exc) or "Not found.")


@api.exception_handler(PermissionDenied)
def forbidden(request, exc):
    return _detail(request, 403, str(exc) or "Forbidden.")


@api.exception_handler(InvalidRun)
def invalid_run(request, exc):
    return _detail(request, 400, str(exc))


@api.exception_handler(BrokerUnavailable)
def broker_down(request, exc):
    return _detail(request, 503, str(exc))


@api.exception_handler(RequestDataTooBig)
def too_big(request, exc):
    return _detail(request, 413, "The body is too large; send fewer rows per request.")


@api.exception_handler(SuspiciousOperation)
def suspicious(request, exc):
    return _detail(request, 400, "Bad request.")
