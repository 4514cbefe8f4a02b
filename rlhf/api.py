"""REST API, model side: training runs, their metrics, model versions (promote, download).

Engineers launch, cancel and promote; managers read (as on the runs and model pages).
"""

from datetime import datetime
from typing import Any, Literal

from django.db import transaction
from django.db.models import Q
from django.http import Http404, StreamingHttpResponse
from ninja import Field, Path, Query, Router, Schema, Status
from ninja.errors import HttpError
from ninja.pagination import paginate

from annotate.api import Detail, Pages, get_project, require, visible_projects
from annotate.roles import ENGINEER, MANAGER

from . import registry, services
from .forms import BOUNDS, ONLINE_BOUNDS, policy_versions
from .ml.config import PRESETS, RUN_CONFIGS
from .models import ModelVersion, RunMetric, TrainingRun

router = Router(tags=["training"])

# Path ids beyond this cannot exist; bounding them keeps every database happy.
MAX_ID = 2**53

Method = Literal[tuple(RUN_CONFIGS)]


class RunOut(Schema):
    id: int
    project: str
    method: str
    status: str
    config: dict[str, Any]
    base_model_id: int
    output_model_id: int | None
    snapshot_id: int | None
    progress_step: int
    progress_total: int
    progress: float | None = Field(None, description="progress_step / progress_total (0-1).")
    eval_metrics: dict[str, Any]
    error: str
    cancel_requested: bool
    resumed_from_id: int | None = Field(
        None, description="The failed run whose checkpoint and snapshot this run continues."
    )
    resumed_at_step: int | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    heartbeat_at: datetime | None
    url: str

    @staticmethod
    def resolve_project(obj):
        return obj.project.slug

    @staticmethod
    def resolve_progress(obj):
        return obj.progress_step / obj.progress_total if obj.progress_total else None

    @staticmethod
    def resolve_url(obj):
        return obj.get_absolute_url()


class RunIn(Schema):
    method: Method
    preset: str | None = Field(None, description="A preset of the method (e.g. demo, standard).")
    settings: dict[str, Any] = Field(
        default_factory=dict,
        description="Config fields of the method (as on the run form and `manage.py train`); "
        "they override the preset's values.",
    )
    base_model: int | str | None = Field(
        None, description="Base policy version id or name; default the project's current model."
    )


class RunQueueFailed(Schema):
    detail: str
    run_id: int


class MetricOut(Schema):
    step: int
    name: str
    value: float


class ModelOut(Schema):
    id: int
    name: str
    kind: str
    project: str | None
    source: str
    parent_id: int | None
    metrics: dict[str, Any]
    run_id: int | None
    is_current: bool
    created_at: datetime

    @staticmethod
    def resolve_project(obj):
        return obj.project.slug if obj.project_id else None

    @staticmethod
    def resolve_run_id(obj):
        run = getattr(obj, "run", None)
        return run.pk if run is not None else None

    @staticmethod
    def resolve_is_current(obj):
        return obj.project_id is not None and obj.project.current_model_id == obj.pk


def _runs(user):
    require(user, ENGINEER, MANAGER)
    return TrainingRun.objects.filter(project__in=visible_projects(user)).select_related(
        "project"
    )


def _run(request, pk):
    run = _runs(request.auth).filter(pk=pk).first()
    if run is None:
        raise Http404(f"No run {pk}.")
    return run


def _models(user):
    require(user, ENGINEER, MANAGER)
    return ModelVersion.objects.filter(
        Q(project__in=visible_projects(user)) | Q(project__isnull=True)
    ).select_related("project", "run")


def _model(request, pk):
    version = _models(request.auth).filter(pk=pk).first()
    if version is None:
        raise Http404(f"No model version {pk}.")
    return version


# --- runs -------------------------------------------------------------------------------

@router.get("/projects/{slug}/runs", response={200: list[RunOut], 403: Detail, 404: Detail},
            summary="A project's training runs, newest first")
@paginate(Pages)
def list_runs(request, slug: str, status: str | None = None):
    project = get_project(request, slug, ENGINEER, MANAGER)
    runs = TrainingRun.objects.filter(project=project).select_related("project")
    if status:
        runs = runs.filter(status=status)
    return runs.order_by("-created_at", "-id")


def _check_bounds(method, values):
    """The run form's bounds on each number (the config's own checks come after)."""
    bounds = {**BOUNDS, **(ONLINE_BOUNDS if method in ("grpo", "rloo") else {})}
    for name, value in values.items():
        if name in bounds and isinstance(value, int | float) and not isinstance(value, bool):
            low, high = bounds[name]
            if not low <= value <= high:
                raise HttpError(400, f"{name} must be between {low:g} and {high:g}, "
                                f"got {value!r}.")


def build_config(method, preset=None, settings=None):
    """A method's config from a preset and settings, checked like the form and the CLI."""
    values = {}
    if preset:
        if preset not in PRESETS[method]:
            raise HttpError(400, f"No preset {preset!r} for {method}; choose from "
                            f"{', '.join(PRESETS[method])}.")
        values.update(PRESETS[method][preset]["values"])
    values.update(settings or {})
    _check_bounds(method, values)
    try:
        return RUN_CONFIGS[method].from_dict(values)
    except (ValueError, TypeError, OverflowError) as exc:
        raise HttpError(400, f"Invalid {method} settings: {exc}") from None


def _base_model(project, wanted):
    if wanted is None:
        if project.current_model is None:
            raise HttpError(400, "The project has no current model; pass base_model.")
        return project.current_model
    policies = policy_versions(project)
    found = None
    if isinstance(wanted, int) or str(wanted).isdigit():
        number = int(wanted)
        found = policies.filter(pk=number).first() if 0 < number <= MAX_ID else None
    found = found or policies.filter(name=str(wanted)).order_by("-created_at").first()
    if found is None:
        raise HttpError(400, f"No policy version {wanted!r} for project {project.slug}.")
    return found


@router.post("/projects/{slug}/runs",
             response={201: RunOut, 400: Detail, 403: Detail, 404: Detail,
                       503: RunQueueFailed},
             summary="Launch a training run (queued for the training worker)")
def launch_run(request, slug: str, body: RunIn):
    """Validate and queue a run; 400 (nothing queued) when the settings or models do not fit,
    503 when the task queue is unreachable (the run is then FAILED with the reason)."""
    project = get_project(request, slug, ENGINEER)
    config = build_config(body.method, body.preset, body.settings)
    base = _base_model(project, body.base_model)
    # The run is enqueued when this block commits; a broker outage marks it FAILED then.
    with transaction.atomic():
        run = services.launch_run(project, config, base, user=request.auth)
    run.refresh_from_db()
    if run.status == TrainingRun.Status.FAILED:
        return Status(503, {"detail": f"Run {run.pk} could not be queued: {run.error}",
                            "run_id": run.pk})
    return Status(201, run)


@router.get("/runs/{run_id}", response={200: RunOut, 403: Detail, 404: Detail},
            summary="A run: status, progress, held-out metrics, error")
def get_run(request, run_id: int = Path(..., ge=1, le=MAX_ID)):
    return _run(request, run_id)


@router.get("/runs/{run_id}/metrics",
            response={200: list[MetricOut], 403: Detail, 404: Detail},
            summary="Every logged metric of a run, by step")
@paginate(Pages)
def run_metrics(request, run_id: int = Path(..., ge=1, le=MAX_ID), name: str | None = None,
                since_step: int = Query(0, ge=0, le=MAX_ID)):
    run = _run(request, run_id)
    rows = RunMetric.objects.filter(run=run, step__gte=since_step)
    if name:
        rows = rows.filter(name=name)
    return rows.order_by("step", "name")


@router.post("/runs/{run_id}/cancel", response={200: RunOut, 403: Detail, 404: Detail,
                                                409: Detail},
             summary="Cancel a queued run, or ask a running one to stop at its next step")
def cancel_run(request, run_id: int = Path(..., ge=1, le=MAX_ID)):
    run = _run(request, run_id)
    require(request.auth, ENGINEER)
    if run.is_finished:
        raise HttpError(409, f"{run} already finished ({run.status}).")
    return services.request_cancel(run)


@router.post("/runs/{run_id}/retry",
             response={201: RunOut, 400: Detail, 403: Detail, 404: Detail, 409: Detail,
                       503: RunQueueFailed},
             summary="Queue a finished run again; a failed run resumes from its checkpoint")
def retry_run(request, run_id: int = Path(..., ge=1, le=MAX_ID)):
    """Same method, settings and base model. A failed run that left a checkpoint is resumed
    from it on the same snapshot (resumed_from_id, resumed_at_step); others start afresh."""
    run = _run(request, run_id)
    require(request.auth, ENGINEER)
    if not run.is_finished:
        raise HttpError(409, f"{run} has not finished yet ({run.status}).")
    try:
        with transaction.atomic():
            new = services.retry_run(run, user=request.auth)
    except services.InvalidRun as exc:
        raise HttpError(400, str(exc)) from None
    new.refresh_from_db()
    if new.status == TrainingRun.Status.FAILED:
        return Status(503, {"detail": f"Run {new.pk} could not be queued: {new.error}",
                            "run_id": new.pk})
    return Status(201, new)


# --- model versions ---------------------------------------------------------------------

@router.get("/projects/{slug}/models", response={200: list[ModelOut],
                                                 403: Detail, 404: Detail},
            summary="A project's model versions (and the shared base models), newest first")
@paginate(Pages)
def list_models(request, slug: str, kind: Literal["policy", "reward"] | None = None):
    project = get_project(request, slug, ENGINEER, MANAGER)
    versions = ModelVersion.objects.filter(
        Q(project=project) | Q(project__isnull=True)
    ).select_related("project", "run")
    if kind:
        versions = versions.filter(kind=kind)
    return versions.order_by("-created_at", "-id")


@router.post("/models/{model_id}/promote",
             response={200: ModelOut, 400: Detail, 403: Detail, 404: Detail},
             summary="Make a policy version its project's current generator")
def promote(request, model_id: int = Path(..., ge=1, le=MAX_ID)):
    version = _model(request, model_id)
    require(request.auth, ENGINEER)
    if version.project is None:
        raise HttpError(400, "A shared base model cannot be promoted; promote a project's "
                        "version.")
    services.promote(version.project, version)
    version.project.refresh_from_db(fields=["current_model"])
    return version


@router.get("/models/{model_id}/download", response={200: None, 403: Detail, 404: Detail},
            summary="The version as a zip (save_pretrained folder + model card)",
            openapi_extra={"responses": {200: {
                "description": "A zip file",
                "content": {"application/zip": {"schema": {"type": "string",
                                                           "format": "binary"}}}}}})
def download(request, model_id: int = Path(..., ge=1, le=MAX_ID)):
    from .views import version_filename

    version = _model(request, model_id)
    try:
        stream = registry.model_zip(version)
    except FileNotFoundError as exc:
        raise Http404(str(exc)) from None
    response = StreamingHttpResponse(stream, content_type="application/zip")
    response["Content-Disposition"] = f'attachment; filename="{version_filename(version)}.zip"'
    return response


# --- the continuous loop ------------------------------------------------------------------

class LoopOut(Schema):
    enabled: bool
    paused: bool
    paused_reason: str
    recipe: str
    min_new_judgements: int
    new_judgements: int
    gate_win_rate: float
    current_model_id: int | None
    running_iteration_id: int | None


class LoopEventOut(Schema):
    id: int
    kind: str
    message: str
    data: dict[str, Any]
    iteration_id: int | None
    created_at: datetime


def _loop_state(project):
    from . import loop

    policy = loop.policy_for(project)
    running = loop.running_iteration(project)
    project.refresh_from_db(fields=["current_model"])
    return {"enabled": policy.enabled, "paused": policy.paused,
            "paused_reason": policy.paused_reason, "recipe": policy.recipe,
            "min_new_judgements": policy.min_new_judgements,
            "new_judgements": loop.new_judgements(policy),
            "gate_win_rate": policy.gate_win_rate,
            "current_model_id": project.current_model_id,
            "running_iteration_id": running.pk if running else None}


@router.get("/projects/{slug}/loop", response={200: LoopOut, 403: Detail, 404: Detail},
            summary="The project's loop: policy state, new judgements, running iteration")
def loop_state(request, slug: str):
    return _loop_state(get_project(request, slug, ENGINEER, MANAGER))


@router.get("/projects/{slug}/loop/timeline",
            response={200: list[LoopEventOut], 403: Detail, 404: Detail},
            summary="The project's timeline: every automatic step with its figures, newest first")
@paginate(Pages)
def loop_timeline(request, slug: str, kind: str | None = None):
    from .models import LoopEvent

    project = get_project(request, slug, ENGINEER, MANAGER)
    events = LoopEvent.objects.filter(project=project)
    if kind:
        events = events.filter(kind=kind)
    return events.order_by("-created_at", "-id")


@router.post("/projects/{slug}/loop/{action}",
             response={200: LoopOut, 400: Detail, 403: Detail, 404: Detail, 409: Detail},
             summary="Pause, resume or trigger the project's loop")
def loop_action(request, slug: str, action: Literal["pause", "resume", "trigger"],
                reason: str = Query("", max_length=200)):
    """`reason` (a query parameter) is shown on the timeline when pausing."""
    from . import loop
    from .models import LoopIteration

    project = get_project(request, slug, ENGINEER)
    if action == "pause":
        loop.pause(project, reason or "paused through the API",
                   user=request.auth)
    elif action == "resume":
        loop.resume(project, user=request.auth)
    else:
        with transaction.atomic():
            started = loop.start_iteration(project, LoopIteration.Trigger.MANUAL,
                                           request.auth)
        if started is None:
            raise HttpError(409, "An iteration is already running for this project.")
    return _loop_state(project)
