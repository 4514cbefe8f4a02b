from django.contrib import messages
from django.http import JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from annotate.models import Project
from annotate.roles import ENGINEER, MANAGER, role_required

from . import services
from .forms import RUN_FORMS, GenerationForm
from .models import GenerationJob, ModelVersion, RunMetric, TrainingRun

CHART_METRICS = ("loss", "rewards/margins", "rewards/accuracies")
# trl.RewardTrainer logs these (and eval_* twins) instead of DPO's rewards/*.
REWARD_CHART_METRICS = ("loss", "accuracy", "margin")


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
    form = RUN_FORMS[method](request.POST or None, project=project)
    if request.method == "POST" and form.is_valid():
        run = services.launch_run(
            project, form.config, form.cleaned_data["base_model"], user=request.user
        )
        return redirect(run)
    context = {"project": project, "form": form, "method": method,
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
    charts = REWARD_CHART_METRICS if run.method == TrainingRun.Method.REWARD else CHART_METRICS
    return render(request, template, {"run": run, "chart_metrics": charts})


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
    return render(request, template, {"job": job})


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
