from django.contrib import messages
from django.http import FileResponse, Http404, JsonResponse, StreamingHttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from annotate.models import Project
from annotate.roles import ENGINEER, MANAGER, role_required

from . import registry, runner, services
from .forms import METHOD_HELP, RUN_FORMS, GenerationForm
from .ml.config import PRESETS
from .models import DatasetSnapshot, GenerationJob, ModelVersion, RunMetric, TrainingRun

METHOD_TITLES = {"reward": "reward model", "dpo": "DPO", "grpo": "online RL (GRPO)",
                 "rloo": "online RL (RLOO)", "sft": "supervised fine-tuning", "kto": "KTO"}
# The curves each method's page leads with (every other logged metric follows).
CHART_METRICS = {
    "dpo": ("loss", "rewards/margins", "rewards/accuracies"),
    # trl.RewardTrainer logs these (and eval_* twins) instead of DPO's rewards/*.
    "reward": ("loss", "accuracy", "margin"),
    "grpo": ("reward", "reward_std", "kl"),
    "rloo": ("reward", "reward_std", "kl"),
    "sft": ("loss", "mean_token_accuracy"),
    "kto": ("loss", "rewards/margins", "kl"),
}


def _poll_status(request, finished):
    """286 for an htmx poll of something finished: htmx then stops polling (and swaps)."""
    return 286 if request.htmx and finished else 200


@role_required(ENGINEER, MANAGER)
def runs(request):
    context = {
        "runs": TrainingRun.objects.select_related("project", "output_model")[:100],
        "projects": Project.objects.all(),
        "models": ModelVersion.objects.select_related("project", "parent")[:50],
    }
    return render(request, "rlhf/runs.html", context)


@role_required(ENGINEER)
def run_new(request, slug):
    project = get_object_or_404(Project, slug=slug)
    method = request.POST.get("method") or request.GET.get("method") or "dpo"
    if method not in RUN_FORMS:
        method = "dpo"
    preset = request.GET.get("preset")
    if preset not in PRESETS[method]:
        preset = None
    form = RUN_FORMS[method](request.POST or None, project=project, preset=preset)
    if request.method == "POST" and form.is_valid():
        try:
            run = services.launch_run(
                project, form.config, form.cleaned_data["base_model"], user=request.user
            )
        except services.InvalidRun as exc:
            form.add_error(None, str(exc))
        else:
            return redirect(run)
    context = {"project": project, "form": form, "method": method, "preset": preset,
               "presets": PRESETS[method], "method_help": METHOD_HELP[method],
               "method_title": METHOD_TITLES[method],
               "methods": TrainingRun.Method.choices}
    return render(request, "rlhf/run_new.html", context)


@role_required(ENGINEER, MANAGER)
def run_detail(request, pk):
    run = get_object_or_404(
        TrainingRun.objects.select_related("project", "base_model", "output_model", "snapshot"),
        pk=pk,
    )
    template = "rlhf/run_detail.html"
    if request.htmx:
        template += "#status"
    charts = CHART_METRICS.get(run.method, ("loss",))
    context = {"run": run, "chart_metrics": charts, "resume_step": runner.resume_point(run)}
    return render(request, template, context, status=_poll_status(request, run.is_finished))


@role_required(ENGINEER, MANAGER)
def run_metrics(request, pk):
    """Return every metric as {name: [[step, value], ...]} for the live chart."""
    run = get_object_or_404(TrainingRun, pk=pk)
    series = {}
    rows = RunMetric.objects.filter(run=run).values_list("name", "step", "value")
    for name, step, value in rows.order_by("step"):
        series.setdefault(name, []).append([step, value])
    return JsonResponse({"status": run.status, "series": series, "finished": run.is_finished})


@role_required(ENGINEER)
@require_POST
def run_cancel(request, pk):
    run = services.request_cancel(get_object_or_404(TrainingRun, pk=pk))
    if run.status == TrainingRun.Status.CANCELLED:
        messages.info(request, "The run was cancelled before it started.")
    elif run.cancel_requested and not run.is_finished:
        messages.info(request, "Cancelling: the run stops at its next training step.")
    if request.htmx:
        return render(request, "rlhf/run_detail.html#status", {"run": run})
    return redirect(run)


@role_required(ENGINEER)
@require_POST
def run_retry(request, pk):
    """Queue the same run again (same method, settings and base model)."""
    run = get_object_or_404(TrainingRun, pk=pk)
    try:
        new = services.retry_run(run, user=request.user)
    except services.InvalidRun as exc:
        messages.error(request, str(exc))
        return redirect(run)
    if new.resumed_from_id:
        messages.success(request, f"Queued {new}: it resumes {run} from its last checkpoint.")
    else:
        messages.success(request, f"Queued {new}, a retry of {run}.")
    return redirect(new)


@role_required(ENGINEER)
def generation_new(request, slug):
    project = get_object_or_404(Project, slug=slug)
    form = GenerationForm(request.POST or None, project=project)
    if request.method == "POST" and form.is_valid():
        prompt_ids = services.prompts_for_generation(project, form.cleaned_data["max_prompts"])
        if not prompt_ids:
            form.add_error(None, "This project has no training prompts to generate for.")
        else:
            job = services.launch_generation(
                project, form.cleaned_data["model_version"], form.config, prompt_ids,
                user=request.user,
            )
            return redirect(job)
    return render(request, "rlhf/generation_new.html", {"project": project, "form": form})


@role_required(ENGINEER, MANAGER)
def generation_detail(request, pk):
    job = get_object_or_404(GenerationJob.objects.select_related("project", "model_version"),
                            pk=pk)
    template = "rlhf/generation_detail.html"
    if request.htmx:
        template += "#progress"
    return render(request, template, {"job": job}, status=_poll_status(request, job.is_finished))


@role_required(ENGINEER)
@require_POST
def rescore(request, slug):
    """Re-score the project's open items with its reward model (for active learning)."""
    project = get_object_or_404(Project, slug=slug)
    if project.reward_model is None:
        messages.error(request, "This project has no reward model yet: train one first.")
        return redirect(project)
    try:
        services.launch_scoring(project, project.reward_model)
    except services.BrokerUnavailable as exc:
        messages.error(request, str(exc))
    else:
        messages.success(request, f"Scoring open items with {project.reward_model}; "
                         "active-learning order follows once the worker is done.")
    return redirect(project)


@role_required(ENGINEER, MANAGER)
def compare(request):
    """Several runs' curves on one chart (?runs=1&runs=2...)."""
    ids = [int(v) for v in request.GET.getlist("runs") if v.isdigit()][:12]
    runs = list(TrainingRun.objects.filter(pk__in=ids).select_related("project", "output_model"))
    names = sorted(set(
        RunMetric.objects.filter(run__in=runs).values_list("name", flat=True).distinct()
    ))
    metric = request.GET.get("metric")
    if metric not in names:
        metric = "loss" if "loss" in names else (names[0] if names else "")
    context = {"runs": runs, "names": names, "metric": metric,
               "recent": TrainingRun.objects.select_related("project")[:50]}
    return render(request, "rlhf/compare.html", context)


@role_required(ENGINEER, MANAGER)
def model_detail(request, pk):
    version = get_object_or_404(ModelVersion.objects.select_related("project", "parent"), pk=pk)
    run = TrainingRun.objects.filter(output_model=version).select_related("snapshot").first()
    project = version.project
    context = {
        "version": version, "run": run, "lineage": registry.lineage(version), "project": project,
        "is_current": project is not None and project.current_model_id == version.pk,
        "evaluations": version.evaluations.select_related("baseline", "reward_model"),
        "reward_models": (ModelVersion.objects.filter(kind=ModelVersion.Kind.REWARD,
                                                      project=project) if project else []),
    }
    return render(request, "rlhf/model_detail.html", context)


@role_required(ENGINEER)
@require_POST
def model_promote(request, pk):
    version = get_object_or_404(ModelVersion, pk=pk)
    if version.project is None:
        messages.error(request, "A shared base model cannot be promoted; promote a project's "
                       "version.")
        return redirect("rlhf-model-detail", pk=pk)
    try:
        services.promote(version.project, version)
    except services.InvalidRun as exc:
        messages.error(request, str(exc))
    else:
        messages.success(request, f"{version} is now the current model of "
                         f"{version.project.name}: new candidates come from it.")
    return redirect("rlhf-model-detail", pk=pk)


@role_required(ENGINEER, MANAGER)
def model_download(request, pk):
    """The version as a zip of its save_pretrained folder plus a generated model card."""
    version = get_object_or_404(ModelVersion, pk=pk)
    try:
        stream = registry.model_zip(version)
    except FileNotFoundError as exc:
        messages.error(request, str(exc))
        return redirect("rlhf-model-detail", pk=pk)
    response = StreamingHttpResponse(stream, content_type="application/zip")
    response["Content-Disposition"] = f'attachment; filename="{version_filename(version)}.zip"'
    return response


def version_filename(version):
    from django.utils.text import slugify

    return slugify(version.name) or f"model-{version.pk}"


@role_required(ENGINEER)
@require_POST
def evaluation_new(request, pk):
    from .models import PolicyEvaluation

    version = get_object_or_404(ModelVersion, pk=pk)
    judge = request.POST.get("judge", PolicyEvaluation.Judge.REWARD)
    reward_model = None
    if request.POST.get("reward_model", "").isdigit():
        reward_model = ModelVersion.objects.filter(
            pk=int(request.POST["reward_model"]), kind=ModelVersion.Kind.REWARD
        ).first()
    try:
        prompts = max(1, min(int(request.POST.get("prompts", 50)), 1000))
    except ValueError:
        prompts = 50
    if version.project is None:
        messages.error(request, "Evaluate a project's version (the shared base has no parent).")
        return redirect("rlhf-model-detail", pk=pk)
    try:
        evaluation = services.launch_evaluation(
            version.project, version, judge, reward_model=reward_model, prompts=prompts,
            user=request.user,
        )
    except services.InvalidRun as exc:
        messages.error(request, str(exc))
        return redirect("rlhf-model-detail", pk=pk)
    return redirect(evaluation)


@role_required(ENGINEER, MANAGER)
def evaluation_detail(request, pk):
    from .models import PolicyEvaluation

    evaluation = get_object_or_404(
        PolicyEvaluation.objects.select_related("project", "policy", "baseline", "reward_model"),
        pk=pk,
    )
    results = evaluation.results
    if evaluation.judge == PolicyEvaluation.Judge.HUMAN:
        results = {**results, **services.human_results(evaluation)}
    template = "rlhf/evaluation_detail.html"
    if request.htmx:
        template += "#status"
    # A blind human evaluation keeps counting judgements after its items are made.
    done = evaluation.is_finished and evaluation.judge != PolicyEvaluation.Judge.HUMAN
    return render(request, template, {"evaluation": evaluation, "results": results},
                  status=_poll_status(request, done))


@role_required(ENGINEER, MANAGER)
def snapshot_download(request, pk):
    from .snapshots import snapshot_file

    snapshot = get_object_or_404(DatasetSnapshot, pk=pk)
    path = snapshot_file(snapshot)
    if not path.exists():
        raise Http404("The snapshot file is gone from MEDIA_ROOT.")
    return FileResponse(path.open("rb"), as_attachment=True,
                        filename=f"{snapshot.project.slug}-{path.name}",
                        content_type="application/jsonl")


@role_required(ENGINEER)
@require_POST
def augment(request, slug):
    """Queue paraphrases of the train prompts with the fewest, written by the current model."""
    from .augment import prompts_for_augmentation

    project = get_object_or_404(Project.objects.select_related("current_model"), slug=slug)
    if project.current_model is None:
        messages.error(request, "This project has no current model to write paraphrases.")
        return redirect(project)
    try:
        limit = max(1, min(int(request.POST.get("prompts", 20)), 1000))
        per_prompt = max(1, min(int(request.POST.get("per_prompt", 1)), 8))
    except ValueError:
        messages.error(request, "Give the number of prompts as a whole number.")
        return redirect(project)
    prompt_ids = prompts_for_augmentation(project, limit)
    try:
        queued = services.launch_augmentation(project, project.current_model, prompt_ids,
                                              per_prompt, robust=False)
    except (services.InvalidRun, services.BrokerUnavailable) as exc:
        messages.error(request, str(exc))
        return redirect(project)
    if queued:
        messages.success(request, f"Paraphrasing {len(queued)} train prompts with "
                         f"{project.current_model}; they join the train split as augmented "
                         "prompts once the worker is done.")
    else:
        messages.info(request, "No train prompts to paraphrase.")
    return redirect(project)
