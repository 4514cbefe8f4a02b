"""Outgoing webhooks: JSON POSTs about a project's events, signed with HMAC-SHA256.

What a receiver gets, per delivery:

    POST <url>
    Content-Type: application/json
    X-Preflab-Event: run.finished
    X-Preflab-Delivery: 42
    X-Preflab-Timestamp: 1718000000
    X-Preflab-Signature: sha256=<hex>

    {"created_at": "...", "data": {...}, "delivery": 42, "event": "run.finished",
     "project": "support"}

The signature is hex(HMAC-SHA256(key=secret, msg=f"{timestamp}.{raw body}")), with the secret
shown on the project's webhooks page. To verify: recompute it over the raw body bytes exactly
as received (before any JSON parsing), compare in constant time (verify_signature does both),
and reject timestamps far from now (replays). A retried delivery keeps its delivery id, so
receivers can drop duplicates by X-Preflab-Delivery.

emit() writes one WebhookDelivery per subscribed active webhook and queues
rlhf.tasks.deliver_webhook after commit; deliver() does one POST attempt. A failed attempt
(network error, timeout, non-2xx) is retried by the task with backoff, MAX_ATTEMPTS in all.
Redirects are not followed (a webhook's URL must answer itself).
"""

import hashlib
import hmac
import http.client
import json
import logging
import time
import urllib.error
import urllib.request
from functools import partial
from urllib.parse import urlsplit

from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder
from django.db import transaction
from django.db.models import F, OuterRef, Subquery
from django.utils import timezone

from .models import WEBHOOK_EVENTS, Webhook, WebhookDelivery

log = logging.getLogger(__name__)

# Sent by "send test event" to one webhook, whatever it subscribed to.
PING = "ping"
MAX_ATTEMPTS = 5
TIMEOUT_SECONDS = 10
SCHEMES = ("http", "https")
# Bytes of a failed response's body kept in the delivery's error.
ERROR_BODY_BYTES = 200
USER_AGENT = "preflab-webhooks/1"


class DeliveryFailed(Exception):
    """One attempt failed in a way another attempt may fix (the task retries it)."""


def sign(secret: str, timestamp: int | str, body: bytes | str) -> str:
    """Return the X-Preflab-Signature header value for a body sent at timestamp."""
    if isinstance(body, str):
        body = body.encode()
    message = f"{timestamp}.".encode() + body
    return "sha256=" + hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def verify_signature(secret: str, timestamp: int | str, body: bytes | str, header: str) -> bool:
    """True if header is the signature of body at timestamp under secret (constant time)."""
    if not header or not secret:
        return False
    return hmac.compare_digest(sign(secret, timestamp, body).encode(), header.strip().encode())


def check_url(url: str) -> str:
    """Return url if it is an absolute http(s) URL with a host; raise ValueError otherwise."""
    parts = urlsplit(url)
    if parts.scheme.lower() not in SCHEMES or not parts.hostname:
        raise ValueError(f"Webhook URLs must be http:// or https:// with a host, not {url!r}")
    return url


def _jsonable(payload):
    # Dates, decimals and UUIDs become strings now, so the stored payload is what is sent.
    return json.loads(json.dumps(payload or {}, cls=DjangoJSONEncoder))


def _enqueue(delivery_id):
    """Queue one delivery; when the broker is down, say so on the row (never send inline)."""
    from . import tasks

    try:
        tasks.deliver_webhook.apply_async(args=[delivery_id], retry=True)
    except Exception as exc:  # kombu raises several connection error types
        log.exception("could not queue webhook delivery %s", delivery_id)
        WebhookDelivery.objects.filter(pk=delivery_id).update(
            error=f"Not sent: the task queue is unreachable ({exc.__class__.__name__}: "
            f"{exc})"[:500]
        )


def _create(webhooks, event, payload):
    deliveries = []
    for webhook in webhooks:
        delivery = WebhookDelivery.objects.create(webhook=webhook, event=event, payload=payload)
        transaction.on_commit(partial(_enqueue, delivery.pk), robust=True)
        deliveries.append(delivery)
    return deliveries


def emit(project, event: str, payload: dict) -> list[WebhookDelivery]:
    """Queue event to every active webhook of project subscribed to it, after commit.

    Never raises: a webhook problem must not fail the run, promotion or pause reporting it.
    """
    try:
        if event not in WEBHOOK_EVENTS:
            raise ValueError(f"Unknown webhook event {event!r}")
        webhooks = [
            hook for hook in Webhook.objects.filter(project=project, active=True)
            if event in (hook.events or [])
        ]
        if not webhooks:
            return []
        return _create(webhooks, event, _jsonable(payload))
    except Exception:
        log.exception("could not emit %s for %s", event, project)
        return []


def send_test(webhook: Webhook, user=None) -> WebhookDelivery:
    """Queue a ping to this webhook only (active or not), to check the receiver."""
    payload = {"message": "Test event from preflab", "webhook": webhook.pk,
               "by": user.get_username() if user else None}
    return _create([webhook], PING, _jsonable(payload))[0]


def body_of(delivery: WebhookDelivery) -> bytes:
    """The exact bytes POSTed for a delivery (what the signature covers)."""
    document = {
        "event": delivery.event,
        "delivery": delivery.pk,
        "project": delivery.webhook.project.slug,
        "created_at": delivery.created_at.isoformat(),
        "data": delivery.payload,
    }
    return json.dumps(document, sort_keys=True, separators=(",", ":")).encode()


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """Refuse every redirect: a 3xx is a failed delivery, its target is never contacted."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        return None


_opener = urllib.request.build_opener(_NoRedirect)


def post(url: str, body: bytes, headers: dict, timeout=TIMEOUT_SECONDS) -> tuple[int, str]:
    """POST body; return (status code, up to ERROR_BODY_BYTES of the response body)."""
    # check_url allows http and https only (no file: or custom schemes).
    request = urllib.request.Request(  # noqa: S310
        check_url(url), data=body, headers=headers, method="POST"
    )
    try:
        with _opener.open(request, timeout=timeout) as response:
            return response.status, response.read(ERROR_BODY_BYTES).decode(errors="replace")
    except urllib.error.HTTPError as exc:  # non-2xx (3xx too: redirects are refused)
        with exc:
            return exc.code, exc.read(ERROR_BODY_BYTES).decode(errors="replace")


def deliver(delivery_id: int) -> bool:
    """Make one POST attempt for a delivery and record it on the row.

    Returns True once delivered (also when it already was: redelivered messages are harmless)
    and False when giving up (inactive hook, bad URL, redirect, attempts used up); raises
    DeliveryFailed when another attempt may succeed.
    """
    delivery = (
        WebhookDelivery.objects.select_related("webhook__project").filter(pk=delivery_id).first()
    )
    if delivery is None:
        log.info("webhook delivery %s is gone; skipping", delivery_id)
        return False
    if delivery.delivered_at is not None:
        return True
    webhook = delivery.webhook
    if not webhook.active and delivery.event != PING:
        _record(delivery, error="Not sent: the webhook was deactivated.")
        return False
    if delivery.attempts >= MAX_ATTEMPTS:
        return False
    attempt = delivery.attempts + 1
    WebhookDelivery.objects.filter(pk=delivery.pk).update(attempts=F("attempts") + 1)
    body = body_of(delivery)
    timestamp = int(time.time())
    headers = {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        "X-Preflab-Event": delivery.event,
        "X-Preflab-Delivery": str(delivery.pk),
        "X-Preflab-Timestamp": str(timestamp),
        "X-Preflab-Signature": sign(webhook.secret, timestamp, body),
    }
    try:
        status, text = post(webhook.url, body, headers)
    except ValueError as exc:  # a URL no attempt can reach
        _record(delivery, error=str(exc))
        return False
    except (OSError, http.client.HTTPException) as exc:  # refused, DNS, timeout, TLS
        reason = getattr(exc, "reason", exc)
        _record(delivery, status_code=None, error=f"{exc.__class__.__name__}: {reason}")
        raise DeliveryFailed(f"delivery {delivery.pk} attempt {attempt}: {reason}") from exc
    if 200 <= status < 300:
        _record(delivery, status_code=status, error="", delivered_at=timezone.now())
        return True
    if 300 <= status < 400:
        _record(delivery, status_code=status, error=f"HTTP {status}: redirects are not followed")
        return False
    _record(delivery, status_code=status, error=f"HTTP {status}: {text}".strip())
    raise DeliveryFailed(f"delivery {delivery.pk} attempt {attempt}: HTTP {status}")


def _record(delivery, **fields):
    if "error" in fields:
        fields["error"] = fields["error"][:500]
    WebhookDelivery.objects.filter(pk=delivery.pk).update(**fields)


def give_up(delivery_id: int, exc: BaseException):
    """Note on the row that no attempt is left (the task's retries are spent)."""
    delivery = WebhookDelivery.objects.filter(pk=delivery_id).first()
    if delivery is not None and delivery.delivered_at is None:
        _record(delivery, error=f"Gave up after {delivery.attempts} attempts: {delivery.error}")
    log.warning("webhook delivery %s failed for good: %s", delivery_id, exc)


# -- what each event says ------------------------------------------------------------------


def site_url(path: str) -> str:
    return settings.PREFLAB_SITE_URL.rstrip("/") + path


def run_finished(run_id: int):
    """Emit run.finished for a run that has just reached its final status."""
    from .models import RunMetric, TrainingRun

    try:
        run = TrainingRun.objects.select_related("project", "output_model").get(pk=run_id)
        if not Webhook.objects.filter(project=run.project, active=True).exists():
            return []
        last_step = Subquery(
            RunMetric.objects.filter(run=run, name=OuterRef("name"))
            .order_by("-step").values("step")[:1]
        )
        metrics = dict(
            RunMetric.objects.filter(run=run, step=last_step).values_list("name", "value")
        )
        payload = {
            "run": run.pk,
            "method": run.method,
            "status": run.status,
            "metrics": metrics,
            "eval_metrics": run.eval_metrics,
            "error": run.error,
            "output_model": run.output_model_id,
            "output_model_name": run.output_model.name if run.output_model else None,
            "base_model": run.base_model_id,
            "started_at": run.started_at,
            "finished_at": run.finished_at,
            "url": site_url(run.get_absolute_url()),
        }
    except Exception:
        log.exception("could not describe run %s for webhooks", run_id)
        return []
    return emit(run.project, "run.finished", payload)


def model_promoted(project, version, previous_id):
    """Emit model.promoted for a version that became the project's current model."""
    from django.urls import reverse

    return emit(project, "model.promoted", {
        "model": version.pk,
        "name": version.name,
        "kind": version.kind,
        "source": version.source,
        "parent": version.parent_id,
        "previous_model": previous_id,
        "url": site_url(reverse("rlhf-model-detail", args=[version.pk])),
    })
