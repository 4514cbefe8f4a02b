"""REST API, human side: token auth, projects, prompt import, items, judgements, export, ingestion.

Access follows the HTML views: engineers and managers see every project (as on the home page
and dashboards); annotators and reviewers see the projects that admit them (open projects and
those they are assigned to). Everything else needs the role its page needs.
"""

import json
from datetime import datetime
from typing import Annotated, Any, Literal

from django.db.models import Prefetch
from django.http import Http404
from ninja import Field, Router, Schema, Status
from ninja.errors import HttpError
from ninja.pagination import PageNumberPagination, paginate
from ninja.security import HttpBearer
from pydantic import field_validator

from . import dashboards, exporting
from .importing import ImportRejected, import_file
from .models import Candidate, Item, Judgement, Project
from .roles import ALL_ROLES, ANNOTATOR, ENGINEER, MANAGER, REVIEWER, has_role
from .tokens import verify_token

router = Router(tags=["projects"])

# Bounded so that page * page_size stays a small integer for every database.
MAX_PAGE = 1_000_000


class TokenAuth(HttpBearer):
    """`Authorization: Bearer pfl_...`: a personal token from /accounts/tokens/."""

    def authenticate(self, request, token):
        found = verify_token(token)
        if found is None:
            return None
        request.user = found.user
        request.api_token = found
        return found.user


class Pages(PageNumberPagination):
    """?page=1&page_size=50 (at most 200 a page); the answer has `items` and `count`."""

    class Input(Schema):
        page: int = Field(1, ge=1, le=MAX_PAGE)
        page_size: int | None = Field(None, ge=1, le=200)

    def __init__(self, page_size=50, max_page_size=200, **kwargs):
        super().__init__(page_size=page_size, max_page_size=max_page_size, **kwargs)


class Detail(Schema):
    detail: str


class ErrorList(Schema):
    detail: str
    errors: list[str] = []


def require(user, *roles):
    """Raise 403 unless the user holds one of the roles (a superuser holds all)."""
    if not has_role(user, *roles):
        raise HttpError(403, f"This needs the {' or '.join(roles)} role.")


def visible_projects(user):
    """The projects a user may see: all for engineers and managers, else those admitting them.

    The same rule as the home page's list (and Project.admits for annotators and reviewers).
    """
    require(user, *ALL_ROLES)
    return Project.objects.visible_to(user)


def get_project(request, slug, *roles):
    """The project if the user may see it (else 404), then the role check (else 403)."""
    project = visible_projects(request.auth).filter(slug=slug).first()
    if project is None:
        raise Http404(f"No project {slug!r} (or you may not see it).")
    if roles:
        require(request.auth, *roles)
    return project


# --- projects ---------------------------------------------------------------------------

class ProjectOut(Schema):
    slug: str
    name: str
    description: str
    guidelines: str
    judgement_kinds: list[str]
    rating_dimensions: list[str]
    rating_scale: int
    overlap: int
    current_model_id: int | None
    reward_model_id: int | None
    created_at: datetime


class ProjectDetail(ProjectOut):
    # Queue counts, for engineers and managers (as on the project page); null for others.
    stats: dict[str, int] | None = None


@router.get("/projects", response=list[ProjectOut], summary="Projects you may see")
@paginate(Pages)
def list_projects(request):
    return visible_projects(request.auth).order_by("name", "id")


@router.get("/projects/{slug}", response={200: ProjectDetail, 404: Detail},
            summary="One project")
def get_project_detail(request, slug: str):
    project = get_project(request, slug)
    out = ProjectDetail.model_validate(project)
    if has_role(request.auth, ENGINEER, MANAGER):
        out.stats = dashboards.project_stats(project)
    return out


# --- prompt import ----------------------------------------------------------------------

class ImportOut(Schema):
    prompts: int
    candidates: int
    items: int
    gold: int


IMPORT_BODY = {
    "requestBody": {
        "required": True,
        "description": "Rows as in the UI import: JSONL (one object a line), CSV (a `prompt` "
        "column and optional `candidate_1`…`candidate_k`, `id`), or a JSON array of the "
        "JSONL objects (element N is reported as line N).",
        "content": {
            "application/json": {"schema": {"type": "array", "items": {"type": "object"}}},
            "application/x-ndjson": {"schema": {"type": "string"}},
            "text/csv": {"schema": {"type": "string"}},
        },
    }
}


def _import_name_and_bytes(request):
    """Turn the body into (file name, bytes) for annotate.importing, by its content type."""
    kind = request.content_type or ""
    body = request.body
    if kind == "application/json":
        try:
            rows = json.loads(body)
        except (ValueError, UnicodeDecodeError) as exc:
            raise HttpError(400, f"The body is not valid JSON ({exc}).") from None
        if not isinstance(rows, list):
            raise HttpError(400, "A JSON body must be an array of rows; send JSONL as "
                            "application/x-ndjson or CSV as text/csv.")
        return "body.jsonl", "\n".join(json.dumps(row) for row in rows).encode("utf-8")
    if kind in ("text/csv", "application/csv"):
        return "body.csv", body
    if kind in ("application/x-ndjson", "application/jsonl", "application/x-jsonlines",
                "text/plain", ""):
        return "body.jsonl", body
    raise HttpError(415, f"Unsupported content type {kind!r}: use application/x-ndjson "
                    "(JSONL), text/csv or application/json (an array of rows).")


@router.post("/projects/{slug}/prompts",
             response={201: ImportOut, 400: ErrorList, 403: Detail, 404: Detail, 415: Detail},
             openapi_extra=IMPORT_BODY, summary="Import prompts (all or nothing)")
def import_prompts(request, slug: str):
    """Validate every row as the UI import does; import all of them, or none with every error."""
    project = get_project(request, slug, ENGINEER)
    name, data = _import_name_and_bytes(request)
    try:
        result = import_file(project, name, data, source="api")
    except ImportRejected as exc:
        return Status(400, {"detail": f"Nothing was imported: {len(exc.errors)} error(s).",
                            "errors": exc.errors})
    return Status(201, result)


# --- items and judgements ---------------------------------------------------------------

class PromptOut(Schema):
    id: int
    external_id: str
    conversation: list[dict[str, str]]
    split: str
    metadata: dict[str, Any]


class CandidateOut(Schema):
    id: int
    text: str
    origin: str
    model_version_id: int | None


class ItemOut(Schema):
    id: int
    prompt: PromptOut
    candidates: list[CandidateOut]
    open_slots: int
    judgement_count: int
    disagreement: float
    is_gold: bool
    review_status: str
    created_at: datetime


@router.get("/projects/{slug}/items", response={200: list[ItemOut], 403: Detail, 404: Detail},
            summary="Items (prompt + candidates) of a project")
@paginate(Pages)
def list_items(request, slug: str, open_only: bool = False):
    project = get_project(request, slug, ENGINEER, MANAGER)
    items = (
        Item.objects.filter(project=project).select_related("prompt")
        .prefetch_related(Prefetch("candidates", queryset=Candidate.objects.order_by("id")))
        .order_by("id")
    )
    if open_only:
        items = items.filter(open_slots__gt=0)
    return items


class JudgementOut(Schema):
    id: int
    item_id: int
    annotator: str
    kinds: list[str]
    ranking: list[list[int]]
    pairwise_choice: str
    pairwise_strength: int | None
    ratings: dict[str, dict[str, int]]
    correction_id: int | None
    correction: str | None
    flags: list[str]
    comment: str
    duration_ms: int | None
    gold_score: float | None
    created_at: datetime
    retracted_at: datetime | None

    @staticmethod
    def resolve_annotator(obj):
        return obj.annotator.username

    @staticmethod
    def resolve_correction(obj):
        return obj.correction.text if obj.correction_id else None


@router.get("/projects/{slug}/judgements",
            response={200: list[JudgementOut], 403: Detail, 404: Detail},
            summary="Raw judgements (engineers, managers; annotators: their own)")
@paginate(Pages)
def list_judgements(request, slug: str, include_retracted: bool = False):
    project = get_project(request, slug, ENGINEER, MANAGER, ANNOTATOR, REVIEWER)
    judgements = (
        Judgement.objects.filter(item__project=project)
        .select_related("annotator", "correction").order_by("id")
    )
    if not has_role(request.auth, ENGINEER, MANAGER):
        judgements = judgements.filter(annotator=request.auth)
    if not include_retracted:
        judgements = judgements.filter(retracted_at__isnull=True)
    return judgements


# --- export -----------------------------------------------------------------------------

# annotate.exporting's formats: jsonl, csv, parquet and a `datasets` folder (zipped).
ExportFormat = Literal[tuple(exporting.MEDIA)]


@router.get("/projects/{slug}/export", response={200: None, 400: Detail, 403: Detail,
                                                 404: Detail},
            summary="Preference rows (TRL conversational) as a download",
            openapi_extra={"responses": {200: {
                "description": "The rows as a file in the format asked for",
                "content": {media.split(";")[0]: {"schema": {"type": "string",
                                                             "format": "binary"}}
                            for media, _ in exporting.MEDIA.values()}}}})
def export(request, slug: str, format: ExportFormat = "jsonl", annotator_weights: bool = False):
    """The rows `manage.py export_preferences` writes: jsonl as is; csv flattens the messages;
    parquet and datasets (a zipped `save_to_disk` folder) keep them nested."""
    project = get_project(request, slug, ENGINEER, MANAGER)
    return exporting.download(project, format, annotator_weights=annotator_weights)


# --- ingestion of production conversations ----------------------------------------------

class MessageIn(Schema):
    role: Literal["system", "user", "assistant"]
    content: str


class FeedbackIn(Schema):
    thumb: Literal["up", "down"] | None = None
    correction: str | None = None
    comment: str | None = None


class ConversationIn(Schema):
    external_id: Annotated[str, Field(min_length=1, max_length=200)]
    messages: Annotated[list[MessageIn], Field(min_length=1)]
    reply: Annotated[str, Field(min_length=1)]
    model_version: str | None = Field(
        None, description="Name or id of the model version that wrote the reply."
    )
    feedback: FeedbackIn | None = None
    customer: dict[str, str] | None = Field(
        None, description="Known customer fields (name, email, phone…), used only to scrub "
        "the text; never stored."
    )

    @field_validator("messages")
    @classmethod
    def _ends_with_user(cls, value):
        if value and value[-1].role != "user":
            raise ValueError("the last message must have role 'user' (the reply answers it)")
        return value

    @field_validator("reply")
    @classmethod
    def _reply_has_text(cls, value):
        if not value.strip():
            raise ValueError("the reply is empty")
        return value


class IngestIn(Schema):
    conversations: Annotated[list[ConversationIn], Field(min_length=1, max_length=500)]


class IngestOut(Schema):
    created: int
    duplicates: int
    items: int
    ids: list[str] = Field(description="External ids of the conversations stored now.")
    generation_job: int | None = Field(
        None, description="The generation job adding fresh candidates, when one was queued."
    )


@router.post("/projects/{slug}/conversations",
             response={200: IngestOut, 201: IngestOut, 400: Detail, 403: Detail, 404: Detail},
             summary="Ingest production conversations (scrubbed of PII before storing)")
def ingest_conversations(request, slug: str, body: IngestIn):
    """Store conversations with their feedback; 200 when every one was already stored."""
    project = get_project(request, slug, ENGINEER)
    from . import ingestion

    conversations = [c.model_dump() for c in body.conversations]
    try:
        result = ingestion.ingest(project, conversations, user=request.auth)
    except ValueError as exc:
        raise HttpError(400, str(exc)) from None
    status = 200 if not result.get("created") and result.get("duplicates") else 201
    return Status(status, result)
