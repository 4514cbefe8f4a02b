"""The continuous loop: when iterations start, what they do, and the loop page."""

import json
import uuid
from pathlib import Path

import pytest
from django.urls import reverse

from annotate import queue
from annotate.importing import import_file
from annotate.models import Candidate, Judgement
from annotate.services import submit_judgement
from rlhf import loop
from rlhf.models import LoopEvent, LoopIteration, LoopPolicy, ModelVersion, TrainingRun
from tests import factories

DEMO = Path(__file__).resolve().parents[2] / "demo" / "support_prompts.jsonl"


def judge_all(project, user, prefer=len):
    """Judge every open item the user can claim; returns the number of judgements."""
    n = 0
    while (assignment := queue.claim_next(project, user)) is not None:
        texts = dict(Candidate.objects.filter(id__in=assignment.shown_order)
                     .values_list("id", "text"))
        ranking = sorted(assignment.shown_order, key=lambda cid: (-prefer(texts[cid]), cid))
        submit_judgement(user, assignment.pk, [[cid] for cid in ranking], uuid.uuid4())
        n += 1
    return n


@pytest.fixture
def looped(project, annotator):
    """A project with a current model, an enabled loop policy and judgements."""
    base = ModelVersion.objects.create(name="base", source="/nowhere", project=project)
    project.current_model = base
    project.save(update_fields=["current_model"])
    policy = loop.policy_for(project)
    policy.enabled = True
    policy.min_new_judgements = 3
    policy.save()
    return project


# -- when iterations start ------------------------------------------------------------------


def test_it_starts_an_iteration_once_enough_new_judgements_arrived(looped, annotator,
                                                                   django_capture_on_commit_callbacks):
    assert loop.tick() == []  # no judgements yet
    judge_all(looped, annotator)
    assert loop.new_judgements(loop.policy_for(looped)) >= 3
    with django_capture_on_commit_callbacks() as callbacks:
        started = loop.tick()
    assert len(started) == 1 and len(callbacks) == 1
    iteration = LoopIteration.objects.get(pk=started[0])
    assert iteration.status == "running" and iteration.trigger == "schedule"
    assert iteration.new_judgements == Judgement.objects.filter(item__project=looped).count()
    assert LoopEvent.objects.filter(iteration=iteration, kind="started").exists()


def test_it_runs_one_iteration_per_project_at_a_time(looped, annotator):
    judge_all(looped, annotator)
    first = loop.start_iteration(looped)
    assert first is not None
    assert loop.start_iteration(looped) is None
    assert loop.start_iteration(looped, LoopIteration.Trigger.MANUAL) is None
    assert loop.tick() == []
    assert LoopIteration.objects.filter(project=looped).count() == 1


def test_it_does_not_start_when_paused_disabled_or_below_the_threshold(looped, annotator):
    judge_all(looped, annotator)
    loop.pause(looped, "checking the data")
    assert loop.tick() == []
    loop.resume(looped)
    LoopPolicy.objects.filter(project=looped).update(min_new_judgements=10_000)
    assert loop.tick() == []
    LoopPolicy.objects.filter(project=looped).update(min_new_judgements=1, enabled=False)
    assert loop.tick() == []
    LoopPolicy.objects.filter(project=looped).update(enabled=True)
    assert len(loop.tick()) == 1
    kinds = list(LoopEvent.objects.filter(project=looped).values_list("kind", flat=True))
    assert "paused" in kinds and "resumed" in kinds


def test_a_manual_trigger_starts_below_the_threshold(looped):
    iteration = loop.start_iteration(looped, LoopIteration.Trigger.MANUAL)
    assert iteration is not None and iteration.new_judgements == 0


def test_judgements_counted_by_an_iteration_do_not_count_again(looped, annotator):
    judge_all(looped, annotator)
    iteration = loop.start_iteration(looped)
    loop.run_iteration(iteration.pk)  # fails at once: the base model path does not exist
    assert loop.new_judgements(loop.policy_for(looped)) == 0


# -- what an iteration does when it cannot go on --------------------------------------------


def test_a_redelivered_iteration_fails_with_the_reason_instead_of_training_twice(looped):
    iteration = loop.start_iteration(looped, LoopIteration.Trigger.MANUAL)
    LoopIteration.objects.filter(pk=iteration.pk).update(stage="training dpo")
    loop.run_iteration(iteration.pk)
    iteration.refresh_from_db()
    assert iteration.status == "failed"
    assert "stopped during 'training dpo'" in iteration.error
    assert not TrainingRun.objects.exists()
    # The constraint is free again: the next iteration may start.
    assert loop.start_iteration(looped, LoopIteration.Trigger.MANUAL) is not None


def test_an_iteration_without_a_current_model_fails_with_a_clear_message(looped):
    iteration = loop.start_iteration(looped, LoopIteration.Trigger.MANUAL)
    looped.current_model = None
    looped.save(update_fields=["current_model"])
    loop.run_iteration(iteration.pk)
    iteration.refresh_from_db()
    assert iteration.status == "failed" and "no current model" in iteration.error
    assert LoopEvent.objects.filter(iteration=iteration, kind="failed").exists()


def test_invalid_recipe_settings_fail_the_iteration_before_training(looped):
    LoopPolicy.objects.filter(project=looped).update(
        recipe="dpo", run_settings={"dpo": {"beta": -1}})
    iteration = loop.start_iteration(looped, LoopIteration.Trigger.MANUAL)
    loop.run_iteration(iteration.pk)
    iteration.refresh_from_db()
    assert iteration.status == "failed" and "dpo settings do not validate" in iteration.error
    assert not TrainingRun.objects.exists()


def test_a_failed_run_fails_its_running_iteration_in_the_sweep(looped):
    iteration = loop.start_iteration(looped, LoopIteration.Trigger.MANUAL)
    run = TrainingRun.objects.create(project=looped, method="dpo", status="failed",
                                     base_model=looped.current_model,
                                     error="The worker stopped reporting")
    iteration.runs.add(run)
    assert loop.fail_stale_iterations() == 1
    iteration.refresh_from_db()
    assert iteration.status == "failed" and "worker stopped reporting" in iteration.error


def test_rollback_makes_an_earlier_version_current_and_says_so(looped, engineer):
    old = looped.current_model
    new = ModelVersion.objects.create(name="tuned", source="/x", project=looped, parent=old)
    looped.current_model = new
    looped.save(update_fields=["current_model"])
    loop.rollback(looped, old, user=engineer)
    looped.refresh_from_db()
    assert looped.current_model == old
    line = LoopEvent.objects.get(project=looped, kind="rolled_back")
    assert "tuned" in line.message and line.user == engineer


# -- iterations that train (the tiny model, in this process) ---------------------------------


@pytest.fixture
def trainable(db, tiny_model_dir, settings, tmp_path, annotator):
    """Demo rows (4 held out), the tiny model current, every item ranked longer-first."""
    settings.PREFLAB_MODELS_DIR = tmp_path / "models"
    settings.MEDIA_ROOT = tmp_path / "media"
    project = factories.project("loopy", overlap=1, review_threshold=None)
    rows = [json.loads(line) for line in DEMO.read_bytes().splitlines()[:14]]
    for row in rows[-4:]:
        row["split"] = "eval"
    import_file(project, "demo.jsonl", "\n".join(json.dumps(r) for r in rows).encode())
    base = ModelVersion.objects.create(name="tiny-base", source=str(tiny_model_dir))
    project.current_model = base
    project.save(update_fields=["current_model"])
    assert judge_all(project, annotator) >= 8
    policy = loop.policy_for(project)
    policy.enabled = True
    policy.min_new_judgements = 1
    policy.generate_prompts = 3
    policy.eval_prompts = 4
    small = {"max_steps": 3, "per_device_train_batch_size": 4, "max_length": 128,
             "eval_fraction": 0.0}
    policy.run_settings = {"reward": dict(small), "dpo": dict(small)}
    policy.save()
    return project, base


def test_an_iteration_trains_the_recipe_gates_promotes_and_queues_generation(
        trainable, django_capture_on_commit_callbacks):
    project, base = trainable
    LoopPolicy.objects.filter(project=project).update(gate_win_rate=0.0, augment=True)
    iteration = loop.start_iteration(project, LoopIteration.Trigger.MANUAL)
    with django_capture_on_commit_callbacks() as callbacks:
        loop.run_iteration(iteration.pk)
    iteration.refresh_from_db()
    assert iteration.status == "promoted", iteration.error
    runs = list(iteration.runs.order_by("id"))
    assert [r.method for r in runs] == ["reward", "dpo"]
    assert all(r.status == "succeeded" for r in runs)
    candidate = runs[1].output_model
    assert iteration.candidate == candidate and candidate.parent == base
    assert iteration.evaluation.reward_model == runs[0].output_model
    assert iteration.evaluation.status == "succeeded"
    assert iteration.win_rate == iteration.evaluation.results["win_rate"]
    project.refresh_from_db()
    assert project.current_model == candidate
    # Generation with the promoted model is queued (on the generation queue, not run here).
    assert iteration.generation is not None
    assert iteration.generation.model_version == candidate
    assert iteration.generation.status == "queued" and len(callbacks) >= 2
    kinds = list(LoopEvent.objects.filter(iteration=iteration).order_by("id")
                 .values_list("kind", flat=True))
    assert kinds == ["started", "run_started", "run_finished", "run_started", "run_finished",
                     "evaluated", "promoted", "generation_queued", "augmentation_queued"]
    evaluated = LoopEvent.objects.get(iteration=iteration, kind="evaluated")
    assert evaluated.data["n"] == 4 and "win-rate" in evaluated.message


def test_the_gate_refuses_a_model_that_is_not_better_and_the_current_one_stays(trainable):
    project, base = trainable
    # A learning rate this small leaves the policy as it was: the same answers as the
    # current model (same sampling seed), so every comparison ties and the win-rate is 0.5.
    LoopPolicy.objects.filter(project=project).update(
        recipe="dpo", gate_win_rate=0.9, pause_on_refusal=True,
        run_settings={"dpo": {"max_steps": 1, "learning_rate": 1e-8, "max_length": 128,
                              "per_device_train_batch_size": 4}})
    reward = ModelVersion.objects.create(name="rm", kind="reward", project=project,
                                         source=str(_reward_model(base)))
    project.reward_model = reward
    project.save(update_fields=["reward_model"])
    iteration = loop.start_iteration(project, LoopIteration.Trigger.MANUAL)
    loop.run_iteration(iteration.pk)
    iteration.refresh_from_db()
    assert iteration.status == "refused", iteration.error
    assert iteration.win_rate < 0.9 and iteration.evaluation.reward_model == reward
    project.refresh_from_db()
    assert project.current_model == base
    policy = loop.policy_for(project)
    assert policy.paused and "refused" in policy.paused_reason
    assert LoopEvent.objects.filter(iteration=iteration, kind="refused").exists()
    assert iteration.generation is None


def _reward_model(base):
    from django.conf import settings

    from tests.ml_support import build_tiny_reward_model

    out = Path(settings.PREFLAB_MODELS_DIR) / "test-rm"
    return build_tiny_reward_model(base.source, out)


# -- the page --------------------------------------------------------------------------------


def test_it_shows_the_loop_page_to_engineers_and_managers(client, looped, engineer, manager):
    loop.event(looped, "started", "Iteration 1 started <script>alert(1)</script>")
    for user in (engineer, manager):
        client.force_login(user)
        response = client.get(reverse("rlhf-loop", args=[looped.slug]))
        assert response.status_code == 200
        assert b"Timeline" in response.content
        assert b"<script>alert(1)" not in response.content
        assert b"&lt;script&gt;" in response.content
    client.force_login(engineer)
    assert b"Save policy" in client.get(reverse("rlhf-loop", args=[looped.slug])).content
    client.force_login(manager)
    assert b"Save policy" not in client.get(reverse("rlhf-loop", args=[looped.slug])).content


def test_it_refuses_annotators_and_outsiders(client, looped, annotator):
    url = reverse("rlhf-loop", args=[looped.slug])
    response = client.get(url)
    assert response.status_code == 302 and "/accounts/login/" in response["Location"]
    client.force_login(annotator)
    assert client.get(url).status_code == 403
    trigger = reverse("rlhf-loop-action", args=[looped.slug, "trigger"])
    assert client.post(trigger).status_code == 403
    assert not LoopIteration.objects.exists()


def test_managers_cannot_change_the_policy_or_trigger(client, looped, manager):
    client.force_login(manager)
    url = reverse("rlhf-loop", args=[looped.slug])
    assert client.post(url, {"recipe": "dpo"}).status_code == 403
    assert client.post(reverse("rlhf-loop-action", args=[looped.slug, "pause"])).status_code == 403
    assert not loop.policy_for(looped).paused


def test_an_engineer_saves_the_policy_and_bad_settings_are_refused(client, looped, engineer):
    client.force_login(engineer)
    url = reverse("rlhf-loop", args=[looped.slug])
    form = {"enabled": "on", "min_new_judgements": 20, "recipe": "reward_dpo",
            "run_settings": '{"dpo": {"beta": 0.2}}', "gate_win_rate": 0.6, "eval_prompts": 30,
            "generate_after": "on", "candidates_per_prompt": 2, "generate_prompts": 50,
            "paraphrases_per_prompt": 1}
    assert client.post(url, form).status_code == 302
    policy = loop.policy_for(looped)
    assert policy.min_new_judgements == 20 and policy.run_settings == {"dpo": {"beta": 0.2}}
    assert policy.gate_win_rate == 0.6
    bad = dict(form, run_settings='{"dpo": {"beta": -3}}', gate_win_rate=0.7)
    response = client.post(url, bad)
    assert response.status_code == 200 and b"dpo settings do not validate" in response.content
    bad = dict(form, run_settings='{"ppo": {}}')
    assert b"Not a step of this recipe: ppo" in client.post(url, bad).content
    bad = dict(form, candidates_per_prompt=9)
    assert b"num_candidates must be between 1 and 8" in client.post(url, bad).content
    assert loop.policy_for(looped).gate_win_rate == 0.6


def test_an_engineer_pauses_resumes_triggers_and_rolls_back(client, looped, engineer,
                                                           django_capture_on_commit_callbacks):
    client.force_login(engineer)
    action = lambda name: reverse("rlhf-loop-action", args=[looped.slug, name])  # noqa: E731
    client.post(action("pause"), {"reason": "bad batch"})
    policy = loop.policy_for(looped)
    assert policy.paused and policy.paused_reason == "bad batch"
    client.post(action("resume"))
    assert not loop.policy_for(looped).paused
    with django_capture_on_commit_callbacks():
        client.post(action("trigger"))
    assert LoopIteration.objects.filter(project=looped, trigger="manual").count() == 1
    response = client.post(action("trigger"), follow=True)
    assert b"already running" in response.content
    old = looped.current_model
    new = ModelVersion.objects.create(name="tuned", source="/x", project=looped, parent=old)
    looped.current_model = new
    looped.save(update_fields=["current_model"])
    client.post(reverse("rlhf-loop-rollback", args=[looped.slug]), {"version": old.pk})
    looped.refresh_from_db()
    assert looped.current_model == old


def test_the_htmx_poll_stops_when_nothing_runs(client, looped, engineer):
    client.force_login(engineer)
    url = reverse("rlhf-loop", args=[looped.slug])
    response = client.get(url, HTTP_HX_REQUEST="true")
    assert response.status_code == 286 and b"Timeline" in response.content
    assert b"Save policy" not in response.content  # only the state fragment
    loop.start_iteration(looped, LoopIteration.Trigger.MANUAL)
    response = client.get(url, HTTP_HX_REQUEST="true")
    assert response.status_code == 200 and b"hx-trigger" in response.content
