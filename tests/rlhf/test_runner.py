"""The worker-side functions, called directly (the integration tests run them in a worker)."""

from datetime import timedelta

import pytest
from django.utils import timezone

from rlhf import runner
from rlhf.models import ModelVersion, TrainingRun


@pytest.fixture
def base(db):
    return ModelVersion.objects.create(name="base", source="/models/base")


@pytest.mark.parametrize("status", ["running", "succeeded", "failed", "cancelled"])
def test_it_ignores_a_run_that_is_not_queued(project, base, status):
    run = TrainingRun.objects.create(project=project, base_model=base, config={}, status=status)
    runner.execute_run(run.pk)
    run.refresh_from_db()
    assert run.status == status and run.started_at is None


def test_it_fails_a_run_without_preference_pairs_with_a_clear_error(project, base, settings,
                                                                    tmp_path):
    settings.MEDIA_ROOT = tmp_path
    run = TrainingRun.objects.create(project=project, base_model=base,
                                     config={"max_steps": 1})
    runner.execute_run(run.pk)
    run.refresh_from_db()
    assert run.status == "failed"
    assert "No preference pairs to train on yet" in run.error
    assert run.snapshot is not None and run.snapshot.rows == 0
    # The run's log says what happened, for its page.
    assert f"{run} of {project.slug} started from base" in run.log
    assert "snapshot" not in run.log.split("started from", 1)[1].split("\n", 1)[0]


@pytest.mark.parametrize(("method", "message"), [
    ("sft", "No SFT targets yet"), ("kto", "No KTO rows yet"),
])
def test_it_names_the_missing_data_per_method(project, base, settings, tmp_path, method,
                                              message):
    settings.MEDIA_ROOT = tmp_path
    run = TrainingRun.objects.create(project=project, base_model=base, method=method,
                                     config={"max_steps": 1})
    runner.execute_run(run.pk)
    run.refresh_from_db()
    assert run.status == "failed" and message in run.error
    assert run.snapshot.kind == method


def test_the_run_log_keeps_its_last_lines_and_reports_changes():
    import logging

    handler = runner.RunLog(limit=3)
    logger = logging.getLogger("rlhf.test-run-log")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        for i in range(5):
            logger.info("line %s", i)
    finally:
        logger.removeHandler(handler)
    assert handler.changed
    text = handler.text()
    assert [line.rsplit(": ", 1)[1] for line in text.splitlines()] == ["line 2", "line 3",
                                                                       "line 4"]
    assert not handler.changed


def test_it_fails_a_run_with_a_bad_stored_config(project, base):
    run = TrainingRun.objects.create(project=project, base_model=base, config={"beta": -1})
    runner.execute_run(run.pk)
    run.refresh_from_db()
    assert run.status == "failed" and "beta" in run.error and run.traceback


def test_it_fails_runs_whose_heartbeat_stopped(project, base):
    stale = TrainingRun.objects.create(
        project=project, base_model=base, config={}, status="running",
        heartbeat_at=timezone.now() - timedelta(hours=1),
    )
    fresh = TrainingRun.objects.create(project=project, base_model=base, config={},
                                       status="running", heartbeat_at=timezone.now())
    assert runner.fail_stale_runs(max_age_seconds=600) == 1
    stale.refresh_from_db()
    fresh.refresh_from_db()
    assert stale.status == "failed" and "stopped reporting" in stale.error
    assert fresh.status == "running"


def test_a_failed_run_is_retried_with_the_same_settings(client, engineer, manager, project,
                                                       base, monkeypatch,
                                                       django_capture_on_commit_callbacks):
    from django.urls import reverse

    sent = []
    monkeypatch.setattr("rlhf.tasks.train.apply_async", lambda args, **kw: sent.append(args))
    run = TrainingRun.objects.create(project=project, base_model=base, method="sft",
                                     config={"max_steps": 3}, status="failed", error="killed")
    client.force_login(manager)
    assert client.post(reverse("rlhf-run-retry", args=[run.pk])).status_code == 403
    client.force_login(engineer)
    assert "Retry with the same settings" in client.get(run.get_absolute_url()).content.decode()
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(reverse("rlhf-run-retry", args=[run.pk]))
    new = TrainingRun.objects.exclude(pk=run.pk).get()
    assert response["Location"] == new.get_absolute_url()
    assert new.method == "sft" and new.config["max_steps"] == 3 and new.base_model == base
    assert new.status == "queued" and sent == [[new.pk]]
    running = TrainingRun.objects.create(project=project, base_model=base, status="running")
    follow = client.post(reverse("rlhf-run-retry", args=[running.pk]), follow=True)
    assert "has not finished yet" in follow.content.decode()


def test_a_run_failed_by_the_heartbeat_sweep_stays_failed(project, base, monkeypatch, settings,
                                                         tmp_path):
    """A slow run marked FAILED meanwhile is not overwritten nor registered when it ends."""
    from rlhf.ml.common import TrainResult
    from rlhf.snapshots import DatasetSnapshot

    settings.PREFLAB_MODELS_DIR = tmp_path
    run = TrainingRun.objects.create(project=project, base_model=base, method="sft",
                                     config={"max_steps": 1})
    snapshot = DatasetSnapshot.objects.create(project=project, path="x", sha256="0", rows=1)
    monkeypatch.setattr("rlhf.snapshots.build_snapshot",
                        lambda *a: (snapshot, [{"prompt": []}], []))

    def slow_train(config, train_rows, eval_rows, **kw):
        runner.fail_stale_runs(max_age_seconds=0)  # the sweep runs while it trains
        return TrainResult(output_dir=kw["output_dir"])

    monkeypatch.setattr("rlhf.ml.sft.train", slow_train)
    runner.execute_run(run.pk)
    run.refresh_from_db()
    assert run.status == "failed" and "stopped reporting" in run.error
    assert run.output_model is None and not ModelVersion.objects.exclude(pk=base.pk).exists()
