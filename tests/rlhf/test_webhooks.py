"""Outgoing webhooks: signed POSTs to a real local receiver, retries, filters, broker down, page."""

import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from django.urls import reverse

from rlhf import runner, services, tasks, webhooks
from rlhf.models import ModelVersion, TrainingRun, Webhook, WebhookDelivery
from tests import factories


class Receiver:
    """An HTTP server on 127.0.0.1 (own thread) that records POSTs and answers `statuses`
    in turn (the last one repeats)."""

    def __init__(self, statuses=(200,), location=None):
        self.requests = []
        self.statuses = list(statuses)
        self.location = location
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                receiver.requests.append({"headers": dict(self.headers), "body": body,
                                          "path": self.path})
                status = receiver.statuses[min(len(receiver.requests),
                                               len(receiver.statuses)) - 1]
                self.send_response(status)
                if receiver.location and 300 <= status < 400:
                    self.send_header("Location", receiver.location)
                self.send_header("Content-Type", "text/plain")
                self.end_headers()
                self.wfile.write(b"ok" if status < 300 else b"receiver says no")

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks/preflab"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(autouse=True)
def fast_users(settings):
    # Users are made per test; the real hasher would be most of these tests' time.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def receiver():
    with Receiver() as server:
        yield server


@pytest.fixture
def base(db):
    return ModelVersion.objects.create(name="base", source="/models/base")


def hook_for(project, url, events=None, **fields):
    return Webhook.objects.create(project=project, url=url, secret="s3cret-" + "x" * 57,
                                  events=list(events or webhooks.WEBHOOK_EVENTS), **fields)


def send(delivery):
    """Run the delivery task in this process (eager: retries run at once, no waits)."""
    tasks.deliver_webhook.apply(args=[delivery.pk])
    delivery.refresh_from_db()
    return delivery


def verified(request, secret):
    headers = request["headers"]
    return webhooks.verify_signature(secret, headers["X-Preflab-Timestamp"], request["body"],
                                     headers["X-Preflab-Signature"])


def finish_run(project, base, status=TrainingRun.Status.SUCCEEDED, **fields):
    run = TrainingRun.objects.create(project=project, base_model=base, method="dpo",
                                     status=TrainingRun.Status.RUNNING)
    run.metrics.create(step=1, name="loss", value=0.9)
    run.metrics.create(step=5, name="loss", value=0.4)
    assert runner._finish(run.pk, status, **fields)
    return run


# -- delivery ---------------------------------------------------------------------------------


def test_it_posts_a_signed_run_finished_the_receiver_can_verify(
        project, base, receiver, django_capture_on_commit_callbacks):
    hook = hook_for(project, receiver.url)
    version = ModelVersion.objects.create(name="v1", source="/m/v1", project=project, parent=base)
    with django_capture_on_commit_callbacks() as callbacks:
        run = finish_run(project, base, eval_metrics={"eval_loss": 0.5}, output_model=version)
    assert len(callbacks) == 1  # queued on commit, not sent inline
    delivery = WebhookDelivery.objects.get(webhook=hook)
    assert receiver.requests == []

    delivery = send(delivery)

    assert delivery.delivered_at is not None and delivery.status_code == 200
    assert delivery.attempts == 1 and delivery.error == ""
    [request] = receiver.requests
    headers = request["headers"]
    assert headers["Content-Type"] == "application/json"
    assert headers["X-Preflab-Event"] == "run.finished"
    assert headers["X-Preflab-Delivery"] == str(delivery.pk)
    assert re.fullmatch(r"sha256=[0-9a-f]{64}", headers["X-Preflab-Signature"])
    assert verified(request, hook.secret)
    body = json.loads(request["body"])
    assert body["event"] == "run.finished" and body["delivery"] == delivery.pk
    assert body["project"] == project.slug and body["created_at"]
    data = body["data"]
    assert data["run"] == run.pk and data["method"] == "dpo" and data["status"] == "succeeded"
    assert data["metrics"] == {"loss": 0.4}  # the last value logged
    assert data["eval_metrics"] == {"eval_loss": 0.5}
    assert data["output_model"] == version.pk and data["error"] == ""
    assert data["url"].endswith(f"/rlhf/runs/{run.pk}/")


def test_it_reports_failed_and_cancelled_runs(project, base,
                                              django_capture_on_commit_callbacks):
    hook_for(project, "http://127.0.0.1:9/")
    with django_capture_on_commit_callbacks():
        finish_run(project, base, TrainingRun.Status.FAILED, error="ValueError: no data")
        queued = TrainingRun.objects.create(project=project, base_model=base, config={})
        services.request_cancel(queued)
        stale = TrainingRun.objects.create(project=project, base_model=base, config={},
                                           status=TrainingRun.Status.RUNNING)
        TrainingRun.objects.filter(pk=stale.pk).update(heartbeat_at="2000-01-01T00:00:00Z")
        assert runner.fail_stale_runs(60) == 1
    payloads = [d.payload for d in WebhookDelivery.objects.order_by("id")]
    assert [(p["status"], p["error"][:10]) for p in payloads] == [
        ("failed", "ValueError"), ("cancelled", ""), ("failed", "The worker"),
    ]
    assert payloads[1]["run"] == queued.pk and payloads[2]["run"] == stale.pk


def test_it_posts_model_promoted_with_the_previous_model(
        project, base, receiver, django_capture_on_commit_callbacks):
    hook = hook_for(project, receiver.url, events=["model.promoted"])
    project.current_model = base
    project.save()
    version = ModelVersion.objects.create(name="v2", source="/m/v2", project=project, parent=base)
    with django_capture_on_commit_callbacks() as callbacks:
        services.promote(project, version)
        services.promote(project, version)  # already current: nothing new to say
    assert len(callbacks) == 1
    send(WebhookDelivery.objects.get())
    [request] = receiver.requests
    assert verified(request, hook.secret)
    assert request["headers"]["X-Preflab-Event"] == "model.promoted"
    data = json.loads(request["body"])["data"]
    assert data["model"] == version.pk and data["name"] == "v2"
    assert data["previous_model"] == base.pk


def test_it_sends_loop_paused_to_subscribers(project, django_capture_on_commit_callbacks):
    hook = hook_for(project, "http://127.0.0.1:9/", events=["loop.paused"])
    with django_capture_on_commit_callbacks():
        [delivery] = webhooks.emit(project, "loop.paused", {"reason": "gate refused"})
    assert delivery.webhook == hook and delivery.payload == {"reason": "gate refused"}


def test_a_tampered_body_or_wrong_secret_fails_verification(project, receiver):
    hook = hook_for(project, receiver.url)
    delivery = WebhookDelivery.objects.create(webhook=hook, event="run.finished",
                                              payload={"run": 1, "status": "succeeded"})
    send(delivery)
    [request] = receiver.requests
    headers = request["headers"]
    assert verified(request, hook.secret)
    tampered = request["body"].replace(b"succeeded", b"failed")
    assert not webhooks.verify_signature(hook.secret, headers["X-Preflab-Timestamp"], tampered,
                                         headers["X-Preflab-Signature"])
    assert not webhooks.verify_signature(hook.secret, int(headers["X-Preflab-Timestamp"]) + 1,
                                         request["body"], headers["X-Preflab-Signature"])
    assert not webhooks.verify_signature("another-secret", headers["X-Preflab-Timestamp"],
                                         request["body"], headers["X-Preflab-Signature"])
    assert not webhooks.verify_signature(hook.secret, headers["X-Preflab-Timestamp"],
                                         request["body"], "")


def test_it_records_non_2xx_and_retries_up_to_the_limit(project):
    with Receiver(statuses=[500]) as failing:
        hook = hook_for(project, failing.url)
        delivery = send(WebhookDelivery.objects.create(webhook=hook, event="run.finished"))
    assert len(failing.requests) == webhooks.MAX_ATTEMPTS == 5
    assert delivery.attempts == 5 and delivery.status_code == 500
    assert delivery.delivered_at is None
    assert delivery.error.startswith("Gave up after 5 attempts: HTTP 500: receiver says no")
    # Every attempt is the same delivery, freshly signed.
    assert {r["headers"]["X-Preflab-Delivery"] for r in failing.requests} == {str(delivery.pk)}
    assert all(verified(r, hook.secret) for r in failing.requests)
    # A redelivered message after the limit sends nothing more.
    webhooks.deliver(delivery.pk)
    assert len(failing.requests) == 5


def test_it_delivers_on_a_later_attempt(project):
    with Receiver(statuses=[503, 502, 204]) as flaky:
        delivery = send(WebhookDelivery.objects.create(
            webhook=hook_for(project, flaky.url), event="run.finished"))
    assert len(flaky.requests) == 3
    assert delivery.attempts == 3 and delivery.status_code == 204
    assert delivery.delivered_at is not None and delivery.error == ""
    assert webhooks.deliver(delivery.pk) is True and len(flaky.requests) == 3  # once only


def test_it_retries_when_nothing_listens(project):
    from config.devservices import free_port

    hook = hook_for(project, f"http://127.0.0.1:{free_port()}/")
    delivery = send(WebhookDelivery.objects.create(webhook=hook, event="run.finished"))
    assert delivery.attempts == 5 and delivery.status_code is None
    assert delivery.delivered_at is None and "Gave up after 5 attempts" in delivery.error
    assert "refused" in delivery.error.lower()


def test_it_does_not_follow_redirects(project, receiver):
    with Receiver(statuses=[302], location=receiver.url) as redirecting:
        delivery = send(WebhookDelivery.objects.create(
            webhook=hook_for(project, redirecting.url), event="run.finished"))
    assert len(redirecting.requests) == 1 and receiver.requests == []
    assert delivery.status_code == 302 and delivery.attempts == 1
    assert "redirects are not followed" in delivery.error and delivery.delivered_at is None


def test_it_only_posts_to_http_and_https(project):
    hook = hook_for(project, "file:///etc/passwd")
    delivery = send(WebhookDelivery.objects.create(webhook=hook, event="run.finished"))
    assert delivery.attempts == 1 and delivery.delivered_at is None
    assert "must be http:// or https://" in delivery.error


def test_it_skips_unsubscribed_events_inactive_hooks_and_other_projects(
        project, base, receiver, django_capture_on_commit_callbacks):
    hook_for(project, receiver.url, events=["model.promoted"])
    hook_for(project, receiver.url, active=False)
    hook_for(factories.project(), receiver.url)
    with django_capture_on_commit_callbacks() as callbacks:
        finish_run(project, base)
        assert webhooks.emit(project, "loop.paused", {}) == []
    assert callbacks == [] and not WebhookDelivery.objects.exists()


def test_it_does_not_send_to_a_hook_deactivated_after_queueing(project, receiver):
    hook = hook_for(project, receiver.url)
    delivery = WebhookDelivery.objects.create(webhook=hook, event="run.finished")
    Webhook.objects.filter(pk=hook.pk).update(active=False)
    delivery = send(delivery)
    assert receiver.requests == [] and delivery.attempts == 0
    assert "deactivated" in delivery.error


def test_emit_never_raises(project, django_capture_on_commit_callbacks):
    hook_for(project, "http://127.0.0.1:9/")
    with django_capture_on_commit_callbacks() as callbacks:
        assert webhooks.emit(project, "no.such.event", {}) == []
        assert webhooks.emit(project, "loop.paused", {"odd": object()}) == []
    assert callbacks == []


def test_a_down_broker_leaves_the_delivery_with_an_error_and_the_caller_unharmed(
        project, base, django_capture_on_commit_callbacks):
    from config.devservices import free_port
    from tests.services import use_broker

    hook_for(project, "http://127.0.0.1:9/")
    version = ModelVersion.objects.create(name="v3", source="/m/v3", project=project, parent=base)
    old = use_broker(f"redis://127.0.0.1:{free_port()}/0")
    try:
        with django_capture_on_commit_callbacks(execute=True):
            services.promote(project, version)
    finally:
        use_broker(old)
    project.refresh_from_db()
    assert project.current_model == version
    delivery = WebhookDelivery.objects.get()
    assert delivery.event == "model.promoted" and delivery.attempts == 0
    assert "task queue is unreachable" in delivery.error


# -- the page ---------------------------------------------------------------------------------


@pytest.fixture
def outsider(db):
    return factories.user("olga")


def page(project):
    return reverse("rlhf-webhooks", args=[project.slug])


def action(hook, name):
    return reverse("rlhf-webhook-action", args=[hook.project.slug, hook.pk, name])


def test_it_lists_webhooks_with_their_deliveries_for_engineers(client, engineer, project):
    hook = hook_for(project, "https://example.com/in")
    WebhookDelivery.objects.create(webhook=hook, event="run.finished", attempts=5,
                                   status_code=500, error="HTTP 500: <b>boom</b>")
    client.force_login(engineer)
    response = client.get(page(project))
    assert response.status_code == 200
    html = response.content.decode()
    assert "https://example.com/in" in html and hook.secret in html
    assert "5/5" in html and "HTTP 500: &lt;b&gt;boom&lt;/b&gt;" in html
    assert "<html" in html and "Add a webhook" in html


def test_it_lists_the_latest_deliveries_of_every_webhook_in_fixed_queries(
        client, engineer, project):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from rlhf.views_webhooks import RECENT_DELIVERIES

    client.force_login(engineer)
    counts = []
    for n in range(3):
        hook = hook_for(project, f"https://example.com/in{n}")
        for d in range(RECENT_DELIVERIES + 2):
            WebhookDelivery.objects.create(webhook=hook, event="run.finished", error=f"e{d}x")
        with CaptureQueriesContext(connection) as queries:
            response = client.get(page(project), HTTP_HX_REQUEST="true")
        counts.append(len(queries))
    assert counts[0] == counts[1] == counts[2]  # not one query per webhook
    html = response.content.decode()
    assert html.count('data-testid="delivery-') == 3 * RECENT_DELIVERIES
    assert "e0x" not in html and f"e{RECENT_DELIVERIES + 1}x" in html


def test_it_answers_htmx_with_the_list_only(client, engineer, project):
    hook_for(project, "https://example.com/in")
    client.force_login(engineer)
    response = client.get(page(project), HTTP_HX_REQUEST="true")
    html = response.content.decode()
    assert response.status_code == 200
    assert 'id="hooks-list"' in html and "https://example.com/in" in html
    assert "<html" not in html and "Add a webhook" not in html


def test_it_adds_a_webhook_with_a_generated_secret(client, engineer, project):
    client.force_login(engineer)
    response = client.post(page(project), {"url": "https://example.com/in",
                                           "events": ["run.finished", "loop.paused"]})
    assert response.status_code == 302
    hook = Webhook.objects.get(project=project)
    assert hook.url == "https://example.com/in" and hook.active
    assert hook.events == ["run.finished", "loop.paused"] and hook.created_by == engineer
    assert re.fullmatch(r"[0-9a-f]{64}", hook.secret)
    assert hook.secret in client.get(page(project)).content.decode()


def test_it_refuses_other_schemes_and_unknown_events(client, engineer, project):
    client.force_login(engineer)
    for data in ({"url": "ftp://example.com/in", "events": ["run.finished"]},
                 {"url": "https://example.com/in", "events": ["run.exploded"]},
                 {"url": "https://example.com/in"}):
        response = client.post(page(project), data)
        assert response.status_code == 200
        assert "errorlist" in response.content.decode()
    assert not Webhook.objects.exists()


def test_it_sends_a_test_event_to_that_hook_only(client, engineer, project, receiver,
                                                 django_capture_on_commit_callbacks):
    hook = hook_for(project, receiver.url, events=["model.promoted"], active=False)
    other = hook_for(project, receiver.url)
    client.force_login(engineer)
    with django_capture_on_commit_callbacks() as callbacks:
        response = client.post(action(hook, "test"))
    assert response.status_code == 302 and len(callbacks) == 1
    delivery = WebhookDelivery.objects.get()
    assert delivery.webhook == hook and delivery.event == "ping"
    assert not other.deliveries.exists()
    send(delivery)
    [request] = receiver.requests
    assert request["headers"]["X-Preflab-Event"] == "ping" and verified(request, hook.secret)


def test_it_deactivates_activates_and_deletes(client, engineer, project):
    hook = hook_for(project, "https://example.com/in")
    client.force_login(engineer)
    assert client.post(action(hook, "deactivate")).status_code == 302
    hook.refresh_from_db()
    assert not hook.active
    response = client.post(action(hook, "activate"), HTTP_HX_REQUEST="true")
    assert response.status_code == 200 and "<html" not in response.content.decode()
    assert 'id="hooks-list"' in response.content.decode()
    hook.refresh_from_db()
    assert hook.active
    assert client.post(action(hook, "delete")).status_code == 302
    assert not Webhook.objects.exists()


def test_actions_need_post_a_known_action_and_this_projects_hook(client, engineer, project):
    hook = hook_for(project, "https://example.com/in")
    client.force_login(engineer)
    assert client.get(action(hook, "delete")).status_code == 405
    assert client.post(action(hook, "explode")).status_code == 404
    elsewhere = factories.project()
    url = reverse("rlhf-webhook-action", args=[elsewhere.slug, hook.pk, "delete"])
    assert client.post(url).status_code == 404
    assert Webhook.objects.filter(pk=hook.pk).exists()


@pytest.mark.parametrize("who", ["annotator", "manager", "outsider"])
def test_other_roles_and_outsiders_are_refused(client, project, who, request):
    hook = hook_for(project, "https://example.com/in")
    client.force_login(request.getfixturevalue(who))
    assert client.get(page(project)).status_code == 403
    assert client.post(page(project), {"url": "https://evil.example/",
                                       "events": ["run.finished"]}).status_code == 403
    assert client.post(action(hook, "delete")).status_code == 403
    assert client.post(action(hook, "test")).status_code == 403
    assert Webhook.objects.count() == 1 and not WebhookDelivery.objects.exists()


def test_anonymous_visitors_are_sent_to_log_in(client, project):
    response = client.get(page(project))
    assert response.status_code == 302 and "/accounts/login/" in response["Location"]


def test_the_project_page_links_the_webhooks_page(client, engineer, project):
    client.force_login(engineer)
    html = client.get(reverse("annotate-project", args=[project.slug])).content.decode()
    assert page(project) in html


# -- through a real worker --------------------------------------------------------------------


@pytest.mark.integration
def test_a_real_worker_delivers_a_promotion(celery_worker, receiver):
    from tests.services import wait_for

    project = factories.project()
    base = ModelVersion.objects.create(name="base", source="/m/base")
    version = ModelVersion.objects.create(name="v1", source="/m/v1", project=project,
                                          parent=base)
    hook = hook_for(project, receiver.url, events=["model.promoted"])
    services.promote(project, version)  # autocommit: queued at once
    delivery = wait_for(
        lambda: WebhookDelivery.objects.filter(webhook=hook, delivered_at__isnull=False).first(),
        timeout=60, message="the worker to deliver the webhook",
    )
    assert delivery.attempts == 1 and delivery.status_code == 200
    [request] = receiver.requests
    assert verified(request, hook.secret)
    assert json.loads(request["body"])["data"]["model"] == version.pk
