import json
import uuid
from datetime import timedelta

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.db.models import Count, Q, Sum
from django.db.models.functions import TruncDate
from django.http import HttpResponse, StreamingHttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.views.decorators.http import require_POST
from django_htmx.http import reswap, retarget

from rlhf.models import RunMetric, TrainingRun

from . import agreement, queue
from .forms import ImportForm, ProjectForm
from .importing import ImportRejected, import_file
from .models import FLAGS, SKIP_REASONS, Assignment, Candidate, Item, Judgement, Project
from .roles import ANNOTATOR, ENGINEER, MANAGER, has_role, role_required
from .services import (
    Answer,
    LeaseLost,
    SubmitError,
    preference_rows,
    skip_assignment,
    submit_judgement,
    undo_judgement,
)


def _annotator_project(request, slug):
    project = get_object_or_404(Project, slug=slug)
    if not project.admits(request.user):
        raise PermissionDenied("You are not assigned to this project.")
    return project


@login_required
def home(request):
    projects = Project.objects.annotate(n_items=Count("items")).order_by("name")
    if not (request.user.is_superuser or has_role(request.user, ENGINEER, MANAGER)):
        projects = projects.filter(
            Q(annotators=None) | Q(annotators=request.user)
        ).distinct()
    return render(request, "annotate/home.html", {"projects": projects})


@role_required(ENGINEER)
def project_new(request):
    form = ProjectForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        project = form.save(commit=False)
        project.created_by = request.user
        project.save()
        messages.success(request, f"Project “{project.name}” created. Import prompts next.")
        return redirect(project)
    return render(request, "annotate/project_form.html", {"form": form})


def _project_stats(project):
    items = Item.objects.filter(project=project)
    totals = items.aggregate(n=Count("id"), judged=Sum("judgement_count"))
    wanted = (totals["n"] or 0) * project.overlap
    judged = totals["judged"] or 0
    return {
        "prompts": project.prompts.count(),
        "candidates": Candidate.objects.filter(prompt__project=project).count(),
        "items": totals["n"] or 0,
        "judgements": judged,
        "wanted": wanted,
        "percent": int(100 * min(judged, wanted) / wanted) if wanted else 0,
        "complete_items": items.filter(judgement_count__gte=project.overlap).count(),
    }


@role_required(ENGINEER, MANAGER)
def project_detail(request, slug):
    project = get_object_or_404(Project, slug=slug)
    return render(request, "annotate/project_detail.html", _project_context(project))


def _project_context(project, import_form=None, import_errors=()):
    return {
        "project": project,
        "stats": _project_stats(project),
        "import_form": import_form or ImportForm(),
        "import_errors": import_errors,
        "runs": project.runs.select_related("output_model")[:10],
        "jobs": project.generation_jobs.all()[:5],
    }


@role_required(ENGINEER)
@require_POST
def project_import(request, slug):
    project = get_object_or_404(Project, slug=slug)
    form = ImportForm(request.POST, request.FILES)
    errors = []
    if form.is_valid():
        upload = form.cleaned_data["file"]
        try:
            result = import_file(project, upload.name, upload.read())
        except ImportRejected as exc:
            errors = exc.errors
        else:
            messages.success(
                request,
                f"Imported {result.prompts} prompts, {result.candidates} candidates, "
                f"{result.items} items from {upload.name}.",
            )
            return redirect(project)
    context = _project_context(project, form, errors)
    return render(request, "annotate/project_detail.html", context, status=400)


@role_required(ENGINEER, MANAGER)
def project_export(request, slug):
    project = get_object_or_404(Project, slug=slug)
    lines = (json.dumps(row, ensure_ascii=False) + "\n" for row in preference_rows(project))
    response = StreamingHttpResponse(lines, content_type="application/jsonl; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{project.slug}-preferences.jsonl"'
    return response


def _work_context(request, project, assignment, notice=None, undo=None):
    context = {"project": project, "assignment": assignment, "notice": notice, "undo": undo}
    if assignment is not None:
        by_id = {c.id: c for c in Candidate.objects.filter(id__in=assignment.shown_order)}
        candidates = [by_id[cid] for cid in assignment.shown_order if cid in by_id]
        context.update(
            candidates=candidates,
            kinds=project.kinds_for(len(candidates)),
            conversation=assignment.item.prompt.conversation,
            client_uuid=uuid.uuid4(),
            scale=range(1, project.rating_scale + 1),
            flags=FLAGS,
            skip_reasons=SKIP_REASONS,
        )
    today = timezone.localtime().replace(hour=0, minute=0, second=0, microsecond=0)
    context["done_today"] = Judgement.objects.filter(
        annotator=request.user, item__project=project, created_at__gte=today,
        retracted_at__isnull=True,
    ).count()
    context["left"] = Item.objects.filter(project=project, open_slots__gt=0).count()
    return context


def _render_work(request, project, assignment, **extra):
    template = "annotate/work.html" + ("#workspace" if request.htmx else "")
    return render(request, template, _work_context(request, project, assignment, **extra))


@role_required(ANNOTATOR)
def work(request, slug):
    project = _annotator_project(request, slug)
    return _render_work(request, project, queue.claim_next(project, request.user))


@role_required(ANNOTATOR)
def prefetch(request, slug):
    """Claim and render the item after the one on screen, so submit shows it at once."""
    project = _annotator_project(request, slug)
    try:
        exclude = [int(v) for v in request.GET.get("current", "").split(",") if v]
    except ValueError:
        return HttpResponse("current must list assignment ids", status=400)
    if not exclude:
        return HttpResponse("current must list assignment ids", status=400)
    assignment = queue.claim_next(project, request.user, exclude=exclude)
    if assignment is None:
        # Nothing more to reserve now: the page submits the normal way and learns what is next.
        return HttpResponse(status=204)
    context = _work_context(request, project, assignment)
    context["prefetched"] = True
    return render(request, "annotate/work.html#workspace", context)


def _answer_from(post):
    """Read the submitted judgement fields; malformed numbers become SubmitError."""
    ratings = {}
    try:
        for key, value in post.items():
            if key.startswith("rating-") and value:
                _, cid, dimension = key.split("-", 2)
                ratings.setdefault(cid, {})[dimension] = int(value)
        strength = int(post["strength"]) if post.get("strength") else None
        correction_of = int(post["correction_of"]) if post.get("correction_of") else None
    except ValueError:
        raise SubmitError("A rating or strength is not a number.") from None
    return Answer(
        ranking=post.get("ranking", ""),
        pairwise_choice=post.get("choice", ""),
        pairwise_strength=strength,
        ratings=ratings,
        correction_of=correction_of,
        correction=post.get("correction", ""),
        flags=post.getlist("flags"),
        comment=post.get("comment", ""),
    )


def _error(request, project, message):
    """Show why a submit failed without replacing the form, so nothing typed is lost."""
    if request.htmx:
        response = HttpResponse(message, content_type="text/plain; charset=utf-8")
        return retarget(reswap(response, "innerHTML"), "#submit-error")
    assignment = Assignment.objects.filter(
        pk=request.POST.get("assignment") or 0, annotator=request.user,
        status=Assignment.Status.ACTIVE,
    ).first()
    context = _work_context(request, project, assignment, notice=message)
    return render(request, "annotate/work.html", context, status=422)


@role_required(ANNOTATOR)
@require_POST
def submit(request, slug):
    project = _annotator_project(request, slug)
    notice = undo = None
    try:
        duration = int(request.POST.get("duration_ms") or 0) or None
    except ValueError:
        duration = None
    try:
        undo, _ = submit_judgement(
            request.user, request.POST.get("assignment"), _answer_from(request.POST),
            request.POST.get("client_uuid", ""), duration_ms=duration,
        )
    except LeaseLost as exc:
        notice = str(exc)
    except SubmitError as exc:
        return _error(request, project, str(exc))
    if not request.htmx:
        if notice:
            messages.warning(request, notice)
        return redirect("annotate-work", slug=slug)
    if request.POST.get("only") == "undo":
        # The page already shows the prefetched next item: it only needs the undo bar.
        return render(request, "annotate/work.html#undo-bar",
                      {"project": project, "undo": undo, "notice": notice})
    return _render_work(request, project, queue.claim_next(project, request.user),
                        notice=notice, undo=undo)


@role_required(ANNOTATOR)
@require_POST
def undo(request, slug):
    project = _annotator_project(request, slug)
    try:
        assignment = undo_judgement(request.user, request.POST.get("judgement") or 0)
    except SubmitError as exc:
        return _render_work(request, project, queue.claim_next(project, request.user),
                            notice=str(exc))
    return _render_work(request, project, assignment,
                        notice="Submission taken back: judge this item again.")


@role_required(ANNOTATOR)
@require_POST
def skip(request, slug):
    project = _annotator_project(request, slug)
    key, text = request.POST.get("reason", ""), request.POST.get("reason_text", "").strip()
    reason = text if key == "other" else SKIP_REASONS.get(key, text)
    try:
        skip_assignment(request.user, request.POST.get("assignment") or 0, reason)
    except SubmitError as exc:
        return _error(request, project, str(exc))
    if not request.htmx:
        return redirect("annotate-work", slug=slug)
    return _render_work(request, project, queue.claim_next(project, request.user),
                        notice="Skipped: the item went back to the pool for others.")


@role_required(MANAGER, ENGINEER)
def dashboard(request, slug):
    project = get_object_or_404(Project, slug=slug)
    since = timezone.now() - timedelta(days=30)
    per_day = list(
        Judgement.objects.filter(item__project=project, created_at__gte=since)
        .annotate(day=TruncDate("created_at"))
        .values("day")
        .annotate(n=Count("id"))
        .order_by("day")
    )
    rankings = {}
    for item_id, ranking in (
        Judgement.objects.filter(item__project=project, item__judgement_count__gte=2,
                                 retracted_at__isnull=True)
        .values_list("item_id", "ranking")
        .iterator()
    ):
        rankings.setdefault(item_id, []).append(ranking)
    pairwise, comparisons = agreement.pairwise_percent_agreement(rankings.values())
    run = (
        TrainingRun.objects.filter(project=project)
        .exclude(status=TrainingRun.Status.QUEUED)
        .order_by("-created_at")
        .first()
    )
    curve = []
    if run is not None:
        curve = list(
            RunMetric.objects.filter(run=run, name__in=["loss", "rewards/margins"])
            .values("step", "name", "value")
        )
    per_annotator = (
        Judgement.objects.filter(item__project=project)
        .values("annotator__username")
        .annotate(n=Count("id"))
        .order_by("-n")
    )
    context = {
        "project": project,
        "stats": _project_stats(project),
        "per_day": [{"day": row["day"].isoformat(), "n": row["n"]} for row in per_day],
        "pairwise": pairwise,
        "comparisons": comparisons,
        "items_multi": len(rankings),
        "run": run,
        "curve": curve,
        "per_annotator": per_annotator,
    }
    return render(request, "dashboard/project.html", context)


def healthz(request):
    return HttpResponse("ok", content_type="text/plain")
