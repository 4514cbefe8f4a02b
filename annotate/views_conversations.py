"""Received production conversations (scrubbed) for engineers and managers."""

from django.core.paginator import Paginator
from django.shortcuts import get_object_or_404, render

from .models import Conversation, Project
from .roles import ENGINEER, MANAGER, REVIEWER, has_role, role_required

PER_PAGE = 25


@role_required(ENGINEER, MANAGER)
def conversations(request, slug):
    project = get_object_or_404(Project, slug=slug)
    received = (
        Conversation.objects.filter(project=project)
        .select_related("model_version", "item")
        .order_by("-received_at", "-id")
    )
    feedback = request.GET.get("feedback", "")
    if feedback in Conversation.Feedback.values and feedback:
        received = received.filter(feedback=feedback)
    else:
        feedback = ""
    page = Paginator(received, PER_PAGE).get_page(request.GET.get("page"))
    return render(request, "annotate/conversations.html", {
        "project": project,
        "page": page,
        "feedback": feedback,
        "total": Conversation.objects.filter(project=project).count(),
        # The item page is the review page, open to reviewers and managers.
        "can_open_items": has_role(request.user, REVIEWER, MANAGER),
    })
