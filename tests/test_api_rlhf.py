"""The REST API, model side: runs (list, launch, read, metrics, cancel) and model versions
(list, promote, download); every endpoint as the right role, a wrong role, an outsider, no
token and a revoked token."""

import io
import zipfile

import pytest

from rlhf.models import ModelVersion, RunMetric, TrainingRun
from tests import factories
from tests.api_support import bearer, body, detail, revoked_bearer


@pytest.fixture
def outsider(db):
    return factories.user("olga", "Annotator")


@pytest.fixture
def base(project):
    version = ModelVersion.objects.create(name="demo-base", source="/models/base")
    project.current_model = version
    project.save()
    return version


@pytest.fixture
def closed(annotator):
    proj = factories.project_with_items(n_prompts=2, slug="closed")
    proj.annotators.add(annotator)
    return proj


@pytest.fixture
def run(project, base):
    run = TrainingRun.objects.create(project=project, method="dpo", config={"beta": 0.1},
                                     base_model=base, status="running", progress_step=3,
                                     progress_total=12, eval_metrics={"eval_loss": 0.5})
    RunMetric.objects.bulk_create(
        [RunMetric(run=run, step=s, name=n, value=s / 10) for s in range(1, 4)
         for n in ("loss", "rewards/margins")]
    )
    return run


@pytest.fixture
def tuned(project, base, tmp_path):
    folder = tmp_path / "tuned"
    folder.mkdir()
    (folder / "config.json").write_text('{"model_type": "llama"}')
    (folder / "model.safetensors").write_bytes(b"\x00\x01" * 100)
    return ModelVersion.objects.create(project=project, name="proj-dpo-run1",
                                       source=str(folder), parent=base)


@pytest.fixture
def no_broker(monkeypatch):
    """Record what would be sent to the training queue instead of sending it."""
    sent = []
    monkeypatch.setattr("rlhf.tasks.train.apply_async",
                        lambda args, **kw: sent.append(args))
    return sent


def launch(client, project, payload, headers):
    return client.post(f"/api/projects/{project.slug}/runs", data=payload,
                       content_type="application/json", **headers)


# --- listing and reading runs -----------------------------------------------------------

def test_it_lists_a_projects_runs_newest_first(client, engineer, manager, project, base, run):
    newer = TrainingRun.objects.create(project=project, method="reward", base_model=base)
    for user in (engineer, manager):
        data = client.get(f"/api/projects/{project.slug}/runs", **bearer(user)).json()
        assert [r["id"] for r in data["items"]] == [newer.pk, run.pk] and data["count"] == 2
    data = client.get(f"/api/projects/{project.slug}/runs?status=running&page_size=1",
                      **bearer(engineer)).json()
    assert data["count"] == 1 and data["items"][0]["id"] == run.pk


def test_it_refuses_run_lists_to_annotators_and_outsiders(client, annotator, outsider, closed):
    assert client.get("/api/projects/closed/runs", **bearer(annotator)).status_code == 403
    assert client.get("/api/projects/closed/runs", **bearer(outsider)).status_code == 404
    assert client.get("/api/projects/closed/runs", **revoked_bearer(annotator)
                      ).status_code == 401


def test_it_shows_a_runs_status_progress_and_metrics(client, engineer, manager, run):
    for user in (engineer, manager):
        data = client.get(f"/api/runs/{run.pk}", **bearer(user)).json()
        assert data["status"] == "running" and data["progress"] == 0.25
        assert data["eval_metrics"] == {"eval_loss": 0.5} and data["error"] == ""
        assert data["url"] == f"/rlhf/runs/{run.pk}/" and data["project"] == run.project.slug


def test_it_refuses_a_run_to_annotators_unknown_ids_and_revoked_tokens(client, annotator,
                                                                       engineer, run):
    assert client.get(f"/api/runs/{run.pk}", **bearer(annotator)).status_code == 403
    assert client.get(f"/api/runs/{run.pk + 100}", **bearer(engineer)).status_code == 404
    assert client.get(f"/api/runs/{run.pk}", **revoked_bearer(engineer)).status_code == 401
    assert client.get(f"/api/runs/{run.pk}").status_code == 401


def test_it_lists_metrics_by_step(client, engineer, manager, annotator, run):
    for user in (engineer, manager):
        data = client.get(f"/api/runs/{run.pk}/metrics", **bearer(user)).json()
        assert data["count"] == 6
        assert [(m["step"], m["name"]) for m in data["items"][:2]] == [
            (1, "loss"), (1, "rewards/margins")]
    data = client.get(f"/api/runs/{run.pk}/metrics?name=loss&since_step=2&page_size=1",
                      **bearer(engineer)).json()
    assert data["count"] == 2 and data["items"] == [{"step": 2, "name": "loss", "value": 0.2}]
    assert client.get(f"/api/runs/{run.pk}/metrics", **bearer(annotator)).status_code == 403
    assert client.get(f"/api/runs/{run.pk}/metrics", **revoked_bearer(manager)
                      ).status_code == 401


# --- launching runs ---------------------------------------------------------------------

def test_it_queues_a_run_from_a_preset_and_settings(client, engineer, project, base, no_broker,
                                                    django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        response = launch(client, project, {"method": "dpo", "preset": "demo",
                                            "settings": {"beta": 0.2, "max_steps": 5}},
                          bearer(engineer))
    assert response.status_code == 201, response.content
    run = TrainingRun.objects.get()
    data = response.json()
    assert data["id"] == run.pk and data["status"] == "queued" and data["method"] == "dpo"
    assert run.status == "queued" and run.created_by == engineer and run.base_model == base
    # The preset's values, overridden by the settings given.
    assert run.config["learning_rate"] == 5e-4 and run.config["beta"] == 0.2
    assert run.config["max_steps"] == 5
    assert no_broker == [[run.pk]]


def test_it_builds_the_same_config_as_the_cli(client, engineer, project, base, no_broker):
    from django.core.management import call_command

    call_command("train", project.slug, "--method", "kto", "--preset", "demo", "--beta", "0.3")
    launch(client, project, {"method": "kto", "preset": "demo", "settings": {"beta": 0.3}},
           bearer(engineer))
    cli, api = TrainingRun.objects.order_by("id")
    assert api.config == cli.config and api.method == cli.method == "kto"


def test_it_picks_a_base_model_by_id_or_name(client, engineer, project, base, tuned,
                                             no_broker):
    headers = bearer(engineer)
    by_id = launch(client, project, {"method": "sft", "base_model": tuned.pk}, headers).json()
    by_name = launch(client, project, {"method": "sft", "base_model": "proj-dpo-run1"},
                     headers).json()
    assert by_id["base_model_id"] == by_name["base_model_id"] == tuned.pk
    response = launch(client, project, {"method": "sft", "base_model": "nope"}, headers)
    assert response.status_code == 400 and "No policy version 'nope'" in detail(response)


@pytest.mark.parametrize(
    ("payload", "message"),
    [({"method": "dpo", "settings": {"learning_rate": -1}}, "learning_rate must be between"),
     ({"method": "dpo", "settings": {"beta": 0}}, "beta must be between"),
     ({"method": "dpo", "settings": {"loss_type": "magic"}}, "loss_type must be one of"),
     ({"method": "dpo", "settings": {"colour": "red"}}, "Unknown DPORunConfig option(s): colour"),
     ({"method": "dpo", "settings": {"beta": "high"}}, "beta must be a number"),
     ({"method": "dpo", "settings": {"max_steps": -1, "num_train_epochs": 0}},
      "num_train_epochs must be between"),
     ({"method": "dpo", "settings": {"seed": 10**400}}, "seed must be between"),
     ({"method": "sft", "settings": {"completion_only_loss": 10**400}}, "must be true or false"),
     ({"method": "kto", "settings": {"per_device_train_batch_size": 1}},
      "KTO needs a batch size of at least 2"),
     ({"method": "dpo", "preset": "huge"}, "No preset 'huge' for dpo"),
     ({"method": "grpo"}, "Online RL needs a reward model"),
     ({"method": "magic"}, "method"),
     ({"settings": {}}, "method")],
)
def test_it_refuses_invalid_settings_and_queues_nothing(client, engineer, project, base,
                                                        no_broker, payload, message):
    response = launch(client, project, payload, bearer(engineer))
    assert response.status_code == 400
    assert message in detail(response)
    assert not TrainingRun.objects.exists() and no_broker == []


def test_it_needs_a_base_model_when_the_project_has_none(client, engineer, project, no_broker):
    response = launch(client, project, {"method": "dpo"}, bearer(engineer))
    assert response.status_code == 400 and "no current model" in detail(response)
    assert not TrainingRun.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_it_fails_the_run_with_the_reason_when_the_broker_is_down(client):
    from config.devservices import free_port
    from tests.services import use_broker

    engineer = factories.user("erin", "Engineer")
    project = factories.project("p")
    project.current_model = ModelVersion.objects.create(name="base", source="/models/base")
    project.save()
    old = use_broker(f"redis://127.0.0.1:{free_port()}/0")
    try:
        response = launch(client, project, {"method": "dpo", "settings": {"max_steps": 1}},
                          bearer(engineer))
    finally:
        use_broker(old)
    assert response.status_code == 503
    run = TrainingRun.objects.get()
    assert response.json()["run_id"] == run.pk
    assert run.status == "failed" and "task queue is unreachable" in run.error
    assert "could not be queued" in detail(response) and run.error in detail(response)


def test_it_lets_only_engineers_launch(client, manager, annotator, outsider, closed, no_broker):
    payload = {"method": "dpo"}
    assert launch(client, closed, payload, bearer(manager)).status_code == 403
    assert launch(client, closed, payload, bearer(annotator)).status_code == 403
    assert launch(client, closed, payload, bearer(outsider)).status_code == 404
    assert launch(client, closed, payload, revoked_bearer(manager)).status_code == 401
    assert launch(client, closed, payload, {}).status_code == 401
    assert not TrainingRun.objects.exists()


# --- cancelling -------------------------------------------------------------------------

def test_it_cancels_a_queued_run_at_once(client, engineer, project, base):
    queued = TrainingRun.objects.create(project=project, method="dpo", base_model=base)
    data = client.post(f"/api/runs/{queued.pk}/cancel", **bearer(engineer)).json()
    assert data["status"] == "cancelled" and data["cancel_requested"] is True


def test_it_asks_a_running_run_to_stop(client, engineer, run):
    data = client.post(f"/api/runs/{run.pk}/cancel", **bearer(engineer)).json()
    assert data["status"] == "running" and data["cancel_requested"] is True


def test_it_says_a_finished_run_cannot_be_cancelled(client, engineer, run):
    TrainingRun.objects.filter(pk=run.pk).update(status="succeeded")
    response = client.post(f"/api/runs/{run.pk}/cancel", **bearer(engineer))
    assert response.status_code == 409 and "already finished" in detail(response)


def test_it_lets_only_engineers_cancel(client, manager, annotator, engineer, run):
    assert client.post(f"/api/runs/{run.pk}/cancel", **bearer(manager)).status_code == 403
    assert client.post(f"/api/runs/{run.pk}/cancel", **bearer(annotator)).status_code == 403
    assert client.post(f"/api/runs/{run.pk}/cancel", **revoked_bearer(engineer)
                       ).status_code == 401
    assert client.post(f"/api/runs/{run.pk + 9}/cancel", **bearer(engineer)).status_code == 404
    run.refresh_from_db()
    assert not run.cancel_requested


# --- model versions ---------------------------------------------------------------------

def test_it_lists_the_projects_versions_and_the_shared_base(client, engineer, manager, project,
                                                            base, tuned):
    other = factories.project("other")
    ModelVersion.objects.create(project=other, name="theirs", source="/x")
    reward = ModelVersion.objects.create(project=project, name="rm", kind="reward", source="/r")
    for user in (engineer, manager):
        data = client.get(f"/api/projects/{project.slug}/models", **bearer(user)).json()
        assert {m["name"] for m in data["items"]} == {"demo-base", "proj-dpo-run1", "rm"}
        current = {m["name"]: m["is_current"] for m in data["items"]}
        assert current == {"demo-base": False, "proj-dpo-run1": False, "rm": False}
    data = client.get(f"/api/projects/{project.slug}/models?kind=reward",
                      **bearer(engineer)).json()
    assert [m["id"] for m in data["items"]] == [reward.pk]


def test_it_refuses_model_lists_to_annotators_and_outsiders(client, annotator, outsider,
                                                            closed):
    assert client.get("/api/projects/closed/models", **bearer(annotator)).status_code == 403
    assert client.get("/api/projects/closed/models", **bearer(outsider)).status_code == 404
    assert client.get("/api/projects/closed/models", **revoked_bearer(annotator)
                      ).status_code == 401


def test_it_promotes_a_policy(client, engineer, project, tuned):
    data = client.post(f"/api/models/{tuned.pk}/promote", **bearer(engineer)).json()
    project.refresh_from_db()
    assert project.current_model == tuned and data["is_current"] is True


def test_it_refuses_to_promote_a_reward_model_or_a_shared_base(client, engineer, project, base):
    reward = ModelVersion.objects.create(project=project, name="rm", kind="reward", source="/r")
    response = client.post(f"/api/models/{reward.pk}/promote", **bearer(engineer))
    assert response.status_code == 400 and "only policies generate" in detail(response)
    response = client.post(f"/api/models/{base.pk}/promote", **bearer(engineer))
    assert response.status_code == 400 and "shared base model" in detail(response)
    project.refresh_from_db()
    assert project.current_model == base


def test_it_lets_only_engineers_promote(client, manager, annotator, engineer, project, base,
                                        tuned):
    assert client.post(f"/api/models/{tuned.pk}/promote", **bearer(manager)).status_code == 403
    assert client.post(f"/api/models/{tuned.pk}/promote", **bearer(annotator)
                       ).status_code == 403
    assert client.post(f"/api/models/{tuned.pk}/promote", **revoked_bearer(engineer)
                       ).status_code == 401
    assert client.post(f"/api/models/{tuned.pk + 50}/promote", **bearer(engineer)
                       ).status_code == 404
    project.refresh_from_db()
    assert project.current_model == base


def test_it_downloads_a_version_as_a_zip(client, engineer, manager, tuned):
    for user in (engineer, manager):
        response = client.get(f"/api/models/{tuned.pk}/download", **bearer(user))
        assert response.status_code == 200 and response["Content-Type"] == "application/zip"
        assert response["Content-Disposition"] == 'attachment; filename="proj-dpo-run1.zip"'
        archive = zipfile.ZipFile(io.BytesIO(body(response)))
        assert sorted(archive.namelist()) == ["README.md", "config.json", "model.safetensors"]
        assert archive.read("model.safetensors") == b"\x00\x01" * 100
        assert "# proj-dpo-run1" in archive.read("README.md").decode()


def test_it_answers_404_when_the_files_are_not_here(client, engineer, base):
    response = client.get(f"/api/models/{base.pk}/download", **bearer(engineer))
    assert response.status_code == 404 and "not a folder on this server" in detail(response)


def test_it_refuses_downloads_to_annotators_and_revoked_tokens(client, annotator, engineer,
                                                               tuned):
    assert client.get(f"/api/models/{tuned.pk}/download", **bearer(annotator)).status_code == 403
    assert client.get(f"/api/models/{tuned.pk}/download", **revoked_bearer(engineer)
                      ).status_code == 401
    assert client.get(f"/api/models/{tuned.pk}/download").status_code == 401


# --- the continuous loop ----------------------------------------------------------------

def test_it_shows_the_loop_state_and_timeline_to_engineers_and_managers(client, engineer,
                                                                        manager, project, base):
    from rlhf import loop

    loop.event(project, "promoted", "Promoted x", win_rate=0.7)
    for user in (engineer, manager):
        state = client.get(f"/api/projects/{project.slug}/loop", **bearer(user))
        assert state.status_code == 200
        assert state.json()["enabled"] is False and state.json()["current_model_id"] == base.pk
        timeline = client.get(f"/api/projects/{project.slug}/loop/timeline", **bearer(user))
        assert timeline.status_code == 200
        assert timeline.json()["items"][0]["data"] == {"win_rate": 0.7}


def test_it_lets_engineers_pause_resume_and_trigger_the_loop(client, engineer, project, base,
                                                             monkeypatch,
                                                             django_capture_on_commit_callbacks):
    sent = []
    monkeypatch.setattr("rlhf.tasks.loop_iteration.apply_async",
                        lambda args, **kw: sent.append(args))
    url = f"/api/projects/{project.slug}/loop"
    paused = client.post(f"{url}/pause?reason=bad+batch", **bearer(engineer))
    assert paused.status_code == 200 and paused.json()["paused_reason"] == "bad batch"
    assert client.post(f"{url}/resume", **bearer(engineer)).json()["paused"] is False
    with django_capture_on_commit_callbacks(execute=True):
        started = client.post(f"{url}/trigger", **bearer(engineer))
    assert started.status_code == 200 and started.json()["running_iteration_id"]
    assert sent == [[started.json()["running_iteration_id"]]]
    again = client.post(f"{url}/trigger", **bearer(engineer))
    assert again.status_code == 409 and "already running" in detail(again)
    assert client.post(f"{url}/explode", **bearer(engineer)).status_code == 400


def test_it_lets_only_engineers_act_on_the_loop(client, manager, annotator, outsider, project,
                                                closed):
    from rlhf import loop

    url = f"/api/projects/{project.slug}/loop"
    assert client.post(f"{url}/pause", **bearer(manager)).status_code == 403
    assert client.get(url, **bearer(annotator)).status_code in (403, 404)
    assert client.get(f"/api/projects/{closed.slug}/loop", **bearer(outsider)).status_code in (
        403, 404)
    assert client.post(f"{url}/trigger", **revoked_bearer(manager)).status_code == 401
    assert client.post(f"{url}/trigger").status_code == 401
    assert not loop.policy_for(project).paused


# --- retrying ---------------------------------------------------------------------------

def test_it_retries_a_finished_run_and_resumes_a_failed_one_from_its_checkpoint(
    client, engineer, manager, run, settings, tmp_path, monkeypatch
):
    from rlhf.models import DatasetSnapshot
    from rlhf.runner import checkpoint_dir

    monkeypatch.setattr("rlhf.tasks.train.apply_async", lambda args, **kw: None)
    response = client.post(f"/api/runs/{run.pk}/retry", **bearer(engineer))
    assert response.status_code == 409 and "has not finished" in detail(response)

    settings.PREFLAB_MODELS_DIR = tmp_path
    snapshot = DatasetSnapshot.objects.create(project=run.project, path="x", sha256="0", rows=1)
    TrainingRun.objects.filter(pk=run.pk).update(status="failed", snapshot=snapshot)
    folder = checkpoint_dir(run.pk) / "checkpoint-4"
    folder.mkdir(parents=True)
    (folder / "optimizer.pt").write_bytes(b"x")
    (folder / "trainer_state.json").write_text("{}")
    assert client.post(f"/api/runs/{run.pk}/retry", **bearer(manager)).status_code == 403
    response = client.post(f"/api/runs/{run.pk}/retry", **bearer(engineer))
    assert response.status_code == 201, response.content
    data = response.json()
    assert data["resumed_from_id"] == run.pk and data["status"] == "queued"
    assert data["config"]["beta"] == 0.1 and data["id"] != run.pk

    TrainingRun.objects.filter(pk=run.pk).update(status="succeeded")
    response = client.post(f"/api/runs/{run.pk}/retry", **bearer(engineer))
    assert response.status_code == 201 and response.json()["resumed_from_id"] is None
