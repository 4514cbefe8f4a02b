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


def _checkpoint(run_id, step, complete=True):
    folder = runner.checkpoint_dir(run_id) / f"checkpoint-{step}"
    folder.mkdir(parents=True)
    (folder / "optimizer.pt").write_bytes(b"x")
    if complete:
        (folder / "trainer_state.json").write_text("{}")
    return folder


def test_a_failed_run_with_a_checkpoint_is_resumed_on_its_own_snapshot(
    client, engineer, project, base, monkeypatch, settings, tmp_path,
    django_capture_on_commit_callbacks,
):
    from django.urls import reverse

    from rlhf.ml.common import TrainResult
    from rlhf.snapshots import build_snapshot

    settings.PREFLAB_MODELS_DIR = tmp_path / "models"
    settings.MEDIA_ROOT = tmp_path / "media"
    monkeypatch.setattr("rlhf.tasks.train.apply_async", lambda args, **kw: None)
    monkeypatch.setattr("rlhf.snapshots.snapshot_rows",
                        lambda *a: ([{"prompt": [{"role": "user", "content": "hi"}],
                                      "completion": [{"role": "assistant", "content": "yo"}]}],
                                    type("Keep", (), {"as_dict": lambda self: {}})()))
    from rlhf.ml.config import SFTRunConfig

    snapshot, _, _ = build_snapshot(project, "sft", SFTRunConfig(eval_fraction=0.0))
    run = TrainingRun.objects.create(project=project, base_model=base, method="sft",
                                     config={"max_steps": 9}, status="failed",
                                     error="killed", snapshot=snapshot)
    assert runner.resume_point(run) is None
    _checkpoint(run.pk, 3)
    _checkpoint(run.pk, 6, complete=False)  # killed while saving step 6: passed over
    assert runner.resume_point(run) == 3
    client.force_login(engineer)
    assert "Resume from step 3" in client.get(run.get_absolute_url()).content.decode()

    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(reverse("rlhf-run-retry", args=[run.pk]), follow=True)
    new = TrainingRun.objects.get(resumed_from=run)
    assert f"resumes {run} from its last checkpoint" in response.content.decode()

    seen = {}

    def train(config, train_rows, eval_rows, **kw):
        seen.update(rows=train_rows, checkpoints=sorted(p.name for p in
                                                          kw["checkpoint_dir"].iterdir()))
        return TrainResult(output_dir=kw["output_dir"])

    monkeypatch.setattr("rlhf.ml.sft.train", train)
    monkeypatch.setattr("rlhf.snapshots.build_snapshot",
                        lambda *a: pytest.fail("a resumed run must not build a new snapshot"))
    runner.execute_run(new.pk)
    new.refresh_from_db()
    assert new.status == "succeeded", new.error
    assert new.snapshot == snapshot and new.resumed_at_step == 3
    assert seen["rows"][0]["completion"][0]["content"] == "yo"
    assert seen["checkpoints"] == ["checkpoint-3", "checkpoint-6"]
    assert not runner.checkpoint_dir(run.pk).exists()
    assert not runner.checkpoint_dir(new.pk).exists()  # finished: its checkpoint is gone
    page = client.get(new.get_absolute_url()).content.decode()
    assert "from step 3" in page and 'data-testid="resumed-from"' in page


def test_a_retry_starts_afresh_without_a_checkpoint_or_a_snapshot(project, base, settings,
                                                                  tmp_path, monkeypatch):
    from rlhf import services

    settings.PREFLAB_MODELS_DIR = tmp_path
    monkeypatch.setattr("rlhf.tasks.train.apply_async", lambda args, **kw: None)
    run = TrainingRun.objects.create(project=project, base_model=base, method="sft",
                                     config={}, status="cancelled")
    _checkpoint(run.pk, 3)
    assert runner.resume_point(run) is None  # only failed runs resume
    assert services.retry_run(run).resumed_from is None
    TrainingRun.objects.filter(pk=run.pk).update(status="failed")
    run.refresh_from_db()
    assert runner.resume_point(run) is None  # no snapshot to train on again
    assert services.retry_run(run).resumed_from is None


def test_a_resumed_run_whose_snapshot_file_changed_fails_with_the_reason(
    project, base, settings, tmp_path
):
    from rlhf.models import DatasetSnapshot

    settings.PREFLAB_MODELS_DIR = tmp_path / "models"
    settings.MEDIA_ROOT = tmp_path / "media"
    (tmp_path / "media").mkdir()
    (tmp_path / "media" / "s.jsonl").write_text('{"split": "train"}\n')
    snapshot = DatasetSnapshot.objects.create(project=project, path="s.jsonl", sha256="0" * 64,
                                              rows=1)
    old = TrainingRun.objects.create(project=project, base_model=base, method="sft", config={},
                                     status="failed", snapshot=snapshot)
    _checkpoint(old.pk, 2)
    new = TrainingRun.objects.create(project=project, base_model=base, method="sft", config={},
                                     resumed_from=old)
    runner.execute_run(new.pk)
    new.refresh_from_db()
    assert new.status == "failed" and "does not match its sha256" in new.error
    assert runner.resume_point(old) == 2  # nothing moved: a fixed file can still be resumed
