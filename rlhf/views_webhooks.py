"""A project's outgoing webhooks: add, list with recent deliveries, test, deactivate, delete."""

import secrets

from django import forms
from django.contrib import messages
from django.core.exceptions import ValidationError
from django.db.models import Prefetch
from django.http import Http404
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from annotate.models import Project
from annotate.roles import ENGINEER, role_required

from . import webhooks
from .models import WEBHOOK_EVENTS, Webhook, WebhookDelivery

# Deliveries shown per webhook.
RECENT_DELIVERIES = 8
ACTIONS = ("test", "deactivate", "activate", "delete")


class WebhookForm(forms.Form):
    url = forms.URLField(
        label="Payload URL", max_length=500, assume_scheme="https",
        help_text="An http:// or https:// address that answers a POST with 2xx. Redirects are "
        "not followed.",
        widget=forms.URLInput(attrs={"placeholder": "https://example.com/hooks/preflab"}),
    )
    events = forms.MultipleChoiceField(
        choices=list(WEBHOOK_EVENTS.items()), initial=list(WEBHOOK_EVENTS),
        widget=forms.CheckboxSelectMultiple,
    )

    def clean_url(self):
        try:
            return webhooks.check_url(self.cleaned_data["url"])
        except ValueError as exc:
            raise ValidationError(str(exc)) from None


def _context(project, form):
    # One query for every webhook's latest deliveries (a sliced prefetch), not one per webhook.
    recent = Prefetch("deliveries", WebhookDelivery.objects.all()[:RECENT_DELIVERIES],
                      to_attr="recent")
    hooks = project.webhooks.select_related("created_by").prefetch_related(recent)
    return {"project": project, "form": form, "hooks": hooks, "events": WEBHOOK_EVENTS,
            "max_attempts": webhooks.MAX_ATTEMPTS}


@role_required(ENGINEER)
def webhooks_page(request, slug):
    project = get_object_or_404(Project, slug=slug)
    form = WebhookForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        hook = Webhook.objects.create(
            project=project, url=form.cleaned_data["url"], secret=secrets.token_hex(32),
            events=form.cleaned_data["events"], created_by=request.user,
        )
        messages.success(request, f"Webhook {hook.pk} added: configure its receiver with the "
                         "signing secret shown below, then send a test event.")
        return redirect("rlhf-webhooks", slug=slug)
    template = "rlhf/webhooks.html"
    if request.htmx:
        template += "#hooks"
    return render(request, template, _context(project, form))


@role_required(ENGINEER)
@require_POST
def webhook_action(request, slug, pk, action):
    project = get_object_or_404(Project, slug=slug)
    hook = get_object_or_404(Webhook, pk=pk, project=project)
    if action not in ACTIONS:
        raise Http404(f"Unknown webhook action {action!r}")
    if action == "test":
        delivery = webhooks.send_test(hook, request.user)
        messages.info(request, f"Test event queued as delivery {delivery.pk}.")
    elif action == "delete":
        hook.delete()
        messages.success(request, f"Webhook {pk} deleted with its deliveries.")
    else:
        hook.active = action == "activate"
        hook.save(update_fields=["active"])
        messages.success(request, f"Webhook {pk} {action}d.")
    if request.htmx:
        return render(request, "rlhf/webhooks.html#hooks", _context(project, WebhookForm()))
    return redirect("rlhf-webhooks", slug=slug)
