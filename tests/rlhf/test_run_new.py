"""Launching a DPO run: validated form, QUEUED row, enqueued only after commit."""

import pytest
from django.urls import reverse

from rlhf import services
from rlhf.ml.config import DPORunConfig
from rlhf.models import ModelVersion, TrainingRun

VALID = {
    "learning_rate": "0.001", "beta": "0.1", "loss_type": "sigmoid",
    "per_device_train_batch_size": "2", "num_train_epochs": "1", "max_steps": "5",
    "eval_fraction": "0.2", "seed": "1",
}


@pytest.fixture
def base(db):
    return ModelVersion.objects.create(name="base", source="/models/base")


def test_it_queues_a_run_and_enqueues_after_commit(client, engineer, project, base,
                                                  django_capture_on_commit_callbacks,
                                                  monkeypatch):
    sent = []
    monkeypatch.setattr("rlhf.tasks.train.apply_async", lambda args, **kw: sent.append(args))
    client.force_login(engineer)
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = client.post(reverse("rlhf-run-new", args=[project.slug]),
                               {**VALID, "base_model": base.pk})
        run = TrainingRun.objects.get()
        assert sent == []  # nothing is sent before the transaction commits
    assert response.status_code == 302 and response["Location"] == run.get_absolute_url()
    assert run.status == "queued" and run.base_model == base and run.created_by == engineer
    assert run.config["beta"] == 0.1 and run.config["max_steps"] == 5
    assert len(callbacks) == 1
    callbacks[0]()
    assert sent == [[run.pk]]


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [("learning_rate", "-1", "greater than or equal"), ("beta", "0", "greater than or equal"),
     ("loss_type", "magic", "Select a valid choice"),
     ("eval_fraction", "0.9", "less than or equal"),
     ("per_device_train_batch_size", "0", "greater than or equal")],
)
def test_it_refuses_invalid_settings_before_queueing(client, engineer, project, base, field,
                                                     value, message):
    client.force_login(engineer)
    data = {**VALID, "base_model": base.pk, field: value}
    response = client.post(reverse("rlhf-run-new", args=[project.slug]), data)
    assert response.status_code == 200
    assert message in response.content.decode()
    assert not TrainingRun.objects.exists()


def test_it_refuses_epochs_zero_without_max_steps(client, engineer, project, base):
    client.force_login(engineer)
    data = {**VALID, "base_model": base.pk, "max_steps": "-1", "num_train_epochs": "0"}
    response = client.post(reverse("rlhf-run-new", args=[project.slug]), data)
    assert "greater than or equal to 0.01" in response.content.decode()
    assert not TrainingRun.objects.exists()


def test_it_marks_the_run_failed_when_the_broker_is_down(project, base, settings,
                                                         django_capture_on_commit_callbacks):
    from config.devservices import free_port
    from tests.services import use_broker

    old = use_broker(f"redis://127.0.0.1:{free_port()}/0")
    try:
        with django_capture_on_commit_callbacks(execute=True):
            run = services.launch_run(project, DPORunConfig(max_steps=1), base)
    finally:
        use_broker(old)
    run.refresh_from_db()
    assert run.status == "failed"
    assert "task queue is unreachable" in run.error


def test_it_cancels_a_queued_run_at_once(client, engineer, project, base):
    run = TrainingRun.objects.create(project=project, base_model=base, config={})
    client.force_login(engineer)
    response = client.post(reverse("rlhf-run-cancel", args=[run.pk]))
    assert response.status_code == 302
    run.refresh_from_db()
    assert run.status == "cancelled" and run.finished_at is not None


def test_it_flags_a_running_run_for_cancellation(client, engineer, project, base):
    run = TrainingRun.objects.create(project=project, base_model=base, config={},
                                     status="running")
    client.force_login(engineer)
    response = client.post(reverse("rlhf-run-cancel", args=[run.pk]), HTTP_HX_REQUEST="true")
    assert response.status_code == 200 and "<html" not in response.content.decode()
    run.refresh_from_db()
    assert run.status == "running" and run.cancel_requested


def test_it_serves_metrics_as_series(client, manager, project, base):
    run = TrainingRun.objects.create(project=project, base_model=base, config={})
    run.metrics.create(step=1, name="loss", value=0.7)
    run.metrics.create(step=2, name="loss", value=0.6)
    run.metrics.create(step=2, name="eval_loss", value=0.65)
    client.force_login(manager)
    data = client.get(reverse("rlhf-run-metrics", args=[run.pk])).json()
    assert data["series"] == {"loss": [[1, 0.7], [2, 0.6]], "eval_loss": [[2, 0.65]]}
    assert data["finished"] is False


def test_it_polls_the_status_fragment_for_htmx(client, manager, project, base):
    run = TrainingRun.objects.create(project=project, base_model=base, config={},
                                     status="failed", error="Boom <script>x</script>")
    client.force_login(manager)
    page = client.get(reverse("rlhf-run-detail", args=[run.pk])).content.decode()
    response = client.get(reverse("rlhf-run-detail", args=[run.pk]), HTTP_HX_REQUEST="true")
    # 286 tells htmx to stop polling a finished run.
    assert response.status_code == 286
    fragment = response.content.decode()
    assert "<html" in page and "<html" not in fragment
    assert "Boom &lt;script&gt;" in fragment and "<script>x" not in fragment
    assert 'hx-trigger="every 2s"' not in page  # a finished run stops polling


def test_it_keeps_polling_a_running_run(client, manager, project, base):
    run = TrainingRun.objects.create(project=project, base_model=base, config={},
                                     status="running")
    client.force_login(manager)
    response = client.get(reverse("rlhf-run-detail", args=[run.pk]), HTTP_HX_REQUEST="true")
    assert response.status_code == 200
