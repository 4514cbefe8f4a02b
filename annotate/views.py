import csv
import json
import uuid
from collections import defaultdict
from datetime import timedelta

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.contrib.auth.models import User
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.db.models import Avg, Count
from django.http import Http404, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.views.decorators.http import require_POST
from django_htmx.http import reswap, retarget

from rlhf.models import RunMetric, TrainingRun

from . import dashboards, queue
from .forms import ImportForm, ProjectForm
from .importing import ImportRejected, import_file
from .models import (
    FLAGS,
    SKIP_REASONS,
    AnnotatorStanding,
    Assignment,
    Candidate,
    DashboardCache,
    Item,
    Judgement,
    Project,
    ReviewStatus,
)
from .roles import ANNOTATOR, ENGINEER, MANAGER, REVIEWER, has_role, role_required
from .services import (
    Answer,
    LeaseLost,
    SubmitError,
    adjudicate,
    resume_annotator,
    skip_assignment,
    submit_judgement,
    undo_judgement,
)
from .tasks import refresh_dashboard


def _annotator_project(request, slug):
    project = get_object_or_404(Project, slug=slug)
    if not project.admits(request.user):
        raise PermissionDenied("You are not assigned to this project.")
    return project


@login_required
def home(request):
    projects = (Project.objects.visible_to(request.user)
                .annotate(n_items=Count("items")).order_by("name"))
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


@role_required(ENGINEER, MANAGER)
def project_detail(request, slug):
    project = get_object_or_404(Project, slug=slug)
    return render(request, "annotate/project_detail.html", _project_context(project))


def _project_context(project, import_form=None, import_errors=()):
    return {
        "project": project,
        "stats": dashboards.project_stats(project),
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
                f"{result.items} items ({result.gold} gold) from {upload.name}.",
            )
            return redirect(project)
    context = _project_context(project, form, errors)
    return render(request, "annotate/project_detail.html", context, status=400)


@role_required(ENGINEER, MANAGER)
def project_export(request, slug):
    from . import exporting

    project = get_object_or_404(Project, slug=slug)
    weights = request.GET.get("annotator_weights") == "1"
    fmt = request.GET.get("format") or "jsonl"
    if fmt not in exporting.FORMATS:
        return HttpResponse(f"Unknown format; use one of {', '.join(exporting.FORMATS)}.",
                            status=400, content_type="text/plain; charset=utf-8")
    return exporting.download(project, fmt, annotator_weights=weights)


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
    context["paused"] = assignment is None and queue.is_paused(project, request.user)
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


def _dashboard_cache(request, project):
    """Return the project's figures, recomputing small projects inline when stale."""
    cache = DashboardCache.objects.filter(project=project).first()
    if not dashboards.is_stale(project, cache):
        return cache, False
    small = (cache.judgements if cache else
             Judgement.objects.filter(item__project=project).count()) <= dashboards.INLINE_LIMIT
    if small:
        return dashboards.refresh(project), False
    return cache, _request_refresh(project, cache)


def _request_refresh(project, cache):
    """Ask the worker to recompute (at most once a minute); return whether it was asked."""
    recent = timezone.now() - timedelta(minutes=1)
    if cache is not None and cache.refresh_requested_at and cache.refresh_requested_at > recent:
        return True
    try:
        refresh_dashboard.delay(project.pk)
    except Exception:  # broker down: the page says the figures may be old
        return False
    DashboardCache.objects.update_or_create(
        project=project, defaults={"refresh_requested_at": timezone.now()}
    )
    return True


def _run_curves(project, limit=5):
    runs = list(
        TrainingRun.objects.filter(project=project)
        .exclude(status=TrainingRun.Status.QUEUED).order_by("-created_at")[:limit]
    )
    series = []
    for run in runs:
        points = defaultdict(list)
        for name, step, value in (
            RunMetric.objects.filter(run=run, name__in=CURVE_METRICS)
            .order_by("step").values_list("name", "step", "value")
        ):
            points[name].append([step, value])
        series.append({"run": run.pk, "label": f"{run} ({run.get_status_display()})",
                       "url": run.get_absolute_url(), "metrics": points})
    return runs, series


CURVE_METRICS = ["loss", "rewards/margins", "rewards/accuracies", "eval_loss",
                 "eval_rewards/margins", "eval_rewards/accuracies", "eval_accuracy"]

# CSV downloads: table name -> (key in the figures, columns).
DASHBOARD_TABLES = {
    "annotators": ("annotators", ["annotator", "judgements", "median_seconds", "agreement",
                                  "agreement_items", "gold_accuracy", "gold_judged",
                                  "first_shown_rate", "first_shown_p", "longer_rate",
                                  "longer_p", "flags"]),
    "per-day": ("per_day", ["day", "judgements", "items"]),
    "per-hour": ("per_hour", ["hour", "judgements"]),
    "per-annotator-day": ("per_annotator_day", ["day", "annotator", "judgements"]),
    "choices": ("choices", ["choice", "judgements"]),
    "best-position": ("best_position", ["position", "judgements"]),
    "ratings": ("ratings", ["dimension", "score", "count"]),
    "flags": ("flags", ["flag", "count"]),
    "leaderboard": ("leaderboard", None),
    "agreement": (None, ["period_kind", "series", "period", "alpha", "items", "units"]),
}


def _table_rows(data, table):
    key, columns = DASHBOARD_TABLES[table]
    if table == "agreement":
        rows = [
            {"period_kind": kind, "series": name, **point}
            for kind, series in data.get("agreement", {}).items()
            for name, points in series.items() for point in points
        ]
        return columns, rows
    rows = data.get(key, [])
    if columns is None:
        columns = list(rows[0].keys()) if rows else ["model"]
    return columns, rows


@role_required(MANAGER, ENGINEER)
def dashboard(request, slug):
    project = get_object_or_404(Project, slug=slug)
    cache, refreshing = _dashboard_cache(request, project)
    data = cache.data if cache else {}
    runs, curves = _run_curves(project)
    context = {
        "project": project,
        # Counting a million items takes longer than the page may: the cached counts serve.
        "stats": data.get("queue") or dashboards.project_stats(project),
        "data": data,
        "cache": cache,
        "refreshing": refreshing,
        "runs": runs,
        "curves": curves,
        "tables": list(DASHBOARD_TABLES),
    }
    return render(request, "dashboard/project.html", context)


@role_required(MANAGER, ENGINEER)
def dashboard_csv(request, slug, table):
    project = get_object_or_404(Project, slug=slug)
    if table not in DASHBOARD_TABLES:
        raise Http404(f"No table {table!r}; tables: {', '.join(DASHBOARD_TABLES)}")
    cache, _ = _dashboard_cache(request, project)
    columns, rows = _table_rows(cache.data if cache else {}, table)
    response = HttpResponse(content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{project.slug}-{table}.csv"'
    writer = csv.writer(response)
    writer.writerow(columns)
    for row in rows:
        writer.writerow(["" if row.get(c) is None else _csv_safe(row.get(c)) for c in columns])
    return response


def _csv_safe(value):
    """Keep spreadsheet formulas inert: annotator names are user input."""
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    if isinstance(value, list | dict):
        return json.dumps(value)
    return value


@role_required(MANAGER, ENGINEER)
@require_POST
def dashboard_refresh(request, slug):
    project = get_object_or_404(Project, slug=slug)
    cache = DashboardCache.objects.filter(project=project).first()
    if Judgement.objects.filter(item__project=project).count() <= dashboards.INLINE_LIMIT:
        dashboards.refresh(project)
        messages.success(request, "Figures recomputed.")
    elif _request_refresh(project, cache):
        messages.info(request, "The worker is recomputing the figures; reload in a minute.")
    else:
        messages.error(request, "The task queue is unreachable, so the figures could not be "
                       "recomputed now; they refresh automatically once it is back.")
    return redirect("dashboard-project", slug=slug)


def _ranking_letters(ranking, letters):
    return " > ".join(" = ".join(letters.get(cid, "?") for cid in group) for group in ranking)


@role_required(REVIEWER, MANAGER)
def review_queue(request, slug):
    project = get_object_or_404(Project, slug=slug)
    status = request.GET.get("status", ReviewStatus.PENDING)
    if status not in (ReviewStatus.PENDING, ReviewStatus.RESOLVED):
        status = ReviewStatus.PENDING
    items = (
        Item.objects.filter(project=project, review_status=status)
        .select_related("prompt", "adjudication__reviewer")
        .order_by("id")
    )
    counts = dict(
        Item.objects.filter(project=project).exclude(review_status=ReviewStatus.NONE)
        .values_list("review_status").annotate(n=Count("id")).order_by()
    )
    page = Paginator(items, 50).get_page(request.GET.get("page"))
    return render(request, "annotate/review_queue.html", {
        "project": project, "status": status, "page": page,
        "pending": counts.get(ReviewStatus.PENDING, 0),
        "resolved": counts.get(ReviewStatus.RESOLVED, 0),
        "can_adjudicate": has_role(request.user, REVIEWER),
    })


def _ranks_from(post, candidate_ids):
    """Read rank_<id> selects (1 = best, equal ranks tie) into groups of ids, best first."""
    ranks = {}
    for cid in candidate_ids:
        value = post.get(f"rank_{cid}", "")
        if not value:
            raise SubmitError("Give every response a rank.")
        try:
            ranks[cid] = int(value)
        except ValueError:
            raise SubmitError("A rank is not a number.") from None
    return [[cid for cid in candidate_ids if ranks[cid] == r] for r in sorted(set(ranks.values()))]


@role_required(REVIEWER, MANAGER)
def review_item(request, slug, item_id):
    project = get_object_or_404(Project, slug=slug)
    item = get_object_or_404(Item.objects.select_related("prompt"), pk=item_id, project=project)
    candidates = list(item.candidates.order_by("id"))
    letters = {c.id: chr(ord("A") + i) for i, c in enumerate(candidates)}
    error = None
    if request.method == "POST":
        if not has_role(request.user, REVIEWER):
            raise PermissionDenied("Recording an adjudicated answer needs the Reviewer role.")
        try:
            ranking = _ranks_from(request.POST, [c.id for c in candidates])
            adjudicate(request.user, item, ranking, request.POST.get("comment", "")[:5000],
                       make_gold=request.POST.get("make_gold") == "on")
        except SubmitError as exc:
            error = str(exc)
        else:
            messages.success(request, f"Item {item.pk} adjudicated: "
                             f"{_ranking_letters(ranking, letters)}.")
            following = (
                Item.objects.filter(project=project, review_status=ReviewStatus.PENDING)
                .exclude(pk=item.pk).order_by("id")
            )
            nxt = following.filter(pk__gt=item.pk).first() or following.first()
            if nxt is not None:
                return redirect("annotate-review-item", slug=slug, item_id=nxt.pk)
            return redirect("annotate-review", slug=slug)
    judgements = list(
        item.judgements.filter(retracted_at__isnull=True)
        .select_related("annotator", "correction").order_by("id")
    )
    for j in judgements:
        j.ranking_letters = _ranking_letters(j.ranking, letters)
        j.shown_letters = ", ".join(letters.get(cid, "?") for cid in j.shown_order)
        j.rating_rows = [(letters.get(int(cid), "?"), scores) for cid, scores in j.ratings.items()]
    adjudication = getattr(item, "adjudication", None)
    current = {}
    if request.method == "POST":
        current = {c.id: request.POST.get(f"rank_{c.id}", "") for c in candidates}
    elif adjudication is not None:
        current = {cid: str(r) for r, group in enumerate(adjudication.ranking, 1) for cid in group}
    rows = [
        {"candidate": c, "letter": letters[c.id], "rank": current.get(c.id, "")}
        for c in candidates
    ]
    context = {
        "project": project, "item": item, "rows": rows, "judgements": judgements,
        "adjudication": adjudication, "ranks": range(1, len(candidates) + 1), "error": error,
        "adjudication_letters": adjudication and _ranking_letters(adjudication.ranking, letters),
        "gold_letters": item.is_gold and _ranking_letters(item.gold_ranking, letters),
        "can_adjudicate": has_role(request.user, REVIEWER), "flags": FLAGS,
    }
    return render(request, "annotate/review_item.html", context, status=422 if error else 200)


@role_required(MANAGER)
def quality(request, slug):
    """Gold accuracy per annotator, flags and pauses, and the review queue's size."""
    project = get_object_or_404(Project, slug=slug)
    standings = {
        s.annotator_id: s
        for s in AnnotatorStanding.objects.filter(project=project).select_related("annotator")
    }
    overall = {
        row["annotator"]: row
        for row in Judgement.objects.filter(
            item__project=project, retracted_at__isnull=True, gold_score__isnull=False
        ).values("annotator").annotate(n=Count("id"), accuracy=Avg("gold_score"))
    }
    users = User.objects.filter(pk__in=set(standings) | set(overall)).order_by("username")
    rows = []
    for user in users:
        standing = standings.get(user.pk)
        row = overall.get(user.pk, {})
        rows.append({
            "user": user, "standing": standing, "gold_total": row.get("n", 0),
            "accuracy_total": row.get("accuracy"),
            "accuracy_window": standing.gold_accuracy if standing else None,
            "window": standing.gold_judged if standing else 0,
        })
    counts = dict(
        Item.objects.filter(project=project).exclude(review_status=ReviewStatus.NONE)
        .values_list("review_status").annotate(n=Count("id")).order_by()
    )
    return render(request, "annotate/quality.html", {
        "project": project, "rows": rows,
        "gold_items": Item.objects.filter(project=project, is_gold=True).count(),
        "pending": counts.get(ReviewStatus.PENDING, 0),
        "resolved": counts.get(ReviewStatus.RESOLVED, 0),
    })


@role_required(MANAGER)
@require_POST
def resume(request, slug, user_id):
    project = get_object_or_404(Project, slug=slug)
    annotator = get_object_or_404(User, pk=user_id)
    if resume_annotator(project, annotator):
        messages.success(request, f"{annotator.username} can annotate again; their gold "
                         "record starts afresh.")
    return redirect("annotate-quality", slug=slug)


def healthz(request):
    return HttpResponse("ok", content_type="text/plain")
