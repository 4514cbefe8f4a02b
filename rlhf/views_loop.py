"""The continuous loop's page: policy, state, pause / resume / trigger, rollback, timeline."""

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.db.models import Q
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.views.decorators.http import require_POST

from annotate.models import Project
from annotate.roles import ENGINEER, MANAGER, has_role, role_required

from . import loop
from .forms import LoopPolicyForm
from .models import LoopEvent, LoopIteration, ModelVersion
from .services import InvalidRun


@role_required(ENGINEER, MANAGER)
def loop_page(request, slug):
    project = get_object_or_404(Project.objects.select_related("current_model"), slug=slug)
    policy = loop.policy_for(project)
    is_engineer = has_role(request.user, ENGINEER)
    form = LoopPolicyForm(request.POST if request.method == "POST" else None, instance=policy)
    if request.method == "POST":
        if not is_engineer:
            raise PermissionDenied("Changing the loop policy needs the Engineer role.")
        if form.is_valid():
            policy = form.save(commit=False)
            policy.updated_at = timezone.now()
            policy.save()
            state = "enabled" if policy.enabled else "disabled"
            loop.event(project, "policy", f"Loop policy saved: {state}, every "
                       f"{policy.min_new_judgements} judgements, "
                       f"{policy.get_recipe_display()}, gate {policy.gate_win_rate:.0%}",
                       user=request.user, enabled=policy.enabled, recipe=policy.recipe,
                       gate=policy.gate_win_rate)
            messages.success(request, "Loop policy saved.")
            return redirect("rlhf-loop", slug=slug)
    running = loop.running_iteration(project)
    context = {
        "project": project, "policy": policy, "form": form, "is_engineer": is_engineer,
        "running": running, "new_judgements": loop.new_judgements(policy),
        "iterations": LoopIteration.objects.filter(project=project)
        .select_related("baseline", "candidate", "evaluation", "generation")[:20],
        "events": LoopEvent.objects.filter(project=project).select_related("user")[:100],
        # This project's policies and the shared base models it may start from again.
        "versions": ModelVersion.objects.filter(
            Q(project=project) | Q(project__isnull=True), kind=ModelVersion.Kind.POLICY
        ).order_by("-created_at", "-id")[:50],
    }
    template = "rlhf/loop.html"
    if request.htmx:
        template += "#state"
    return render(request, template, context, status=286 if request.htmx and not running
                  else 200)


@role_required(ENGINEER)
@require_POST
def loop_action(request, slug, action):
    project = get_object_or_404(Project, slug=slug)
    if action == "pause":
        loop.pause(project, request.POST.get("reason") or "paused by hand", user=request.user)
        messages.success(request, "Loop paused: no new iteration starts until you resume it.")
    elif action == "resume":
        loop.resume(project, user=request.user)
        messages.success(request, "Loop resumed.")
    elif action == "trigger":
        iteration = loop.start_iteration(project, LoopIteration.Trigger.MANUAL, request.user)
        if iteration is None:
            messages.error(request, "An iteration is already running for this project.")
        else:
            messages.success(request, f"Iteration {iteration.pk} queued.")
    else:
        messages.error(request, f"Unknown action {action!r}.")
    return redirect("rlhf-loop", slug=slug)


@role_required(ENGINEER)
@require_POST
def loop_rollback(request, slug):
    project = get_object_or_404(Project.objects.select_related("current_model"), slug=slug)
    try:
        version = ModelVersion.objects.get(Q(project=project) | Q(project__isnull=True),
                                           pk=int(request.POST.get("version", "")))
        loop.rollback(project, version, user=request.user)
    except (ValueError, ModelVersion.DoesNotExist):
        messages.error(request, "Choose one of this project's policy versions.")
    except InvalidRun as exc:
        messages.error(request, str(exc))
    else:
        messages.success(request, f"{version} is the current model again.")
    return redirect("rlhf-loop", slug=slug)
