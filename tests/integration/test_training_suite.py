"""Every training method through the real path: launch_run -> Redis -> a Celery worker -> TRL.

One worker process serves the whole module, so its pool child imports torch and TRL once; the
database is still flushed after each test (transactional_db), so every test builds its own
annotated project (a second or so). The test that kills the worker starts a new one.
"""

import hashlib
import json
import re
import uuid
from pathlib import Path

import pytest
from django.test import override_settings

from annotate import queue
from annotate.importing import import_file
from annotate.models import Candidate, Item, Prompt
from annotate.services import Answer, submit_judgement
from rlhf import runner, services
from rlhf.ml.config import (
    DPORunConfig,
    GRPORunConfig,
    KTORunConfig,
    RewardRunConfig,
    RLOORunConfig,
    SampleConfig,
    SFTRunConfig,
)
from rlhf.ml.data import prompt_key, read_jsonl
from rlhf.models import DatasetSnapshot, ModelVersion, PolicyEvaluation, RunMetric, TrainingRun
from rlhf.snapshots import snapshot_file
from tests import factories
from tests.services import CeleryWorker, wait_for

pytestmark = pytest.mark.integration
DEMO = Path(__file__).resolve().parents[2] / "demo" / "support_prompts.jsonl"
FINISHED = ("succeeded", "failed", "cancelled")

# The smallest runs that still take optimizer steps and log every step.
CONFIGS = {
    "reward": RewardRunConfig(max_steps=2, per_device_train_batch_size=4, learning_rate=3e-3),
    "dpo": DPORunConfig(max_steps=2, per_device_train_batch_size=4, learning_rate=5e-3,
                        max_length=128),
    "grpo": GRPORunConfig(max_steps=2, per_device_train_batch_size=2, num_generations=2,
                          max_completion_length=8, learning_rate=1e-3, beta=0.1),
    "rloo": RLOORunConfig(max_steps=2, per_device_train_batch_size=2, num_generations=2,
                          max_completion_length=8, learning_rate=1e-3, beta=0.1),
    "sft": SFTRunConfig(max_steps=2, per_device_train_batch_size=4, learning_rate=1e-3),
    "kto": KTORunConfig(max_steps=2, per_device_train_batch_size=4, learning_rate=1e-3),
}
# What each method must have streamed into RunMetric, and the data it trains on.
KEY_METRICS = {
    "reward": {"accuracy"},
    "dpo": {"rewards/margins"},
    "grpo": {"reward", "reward_std", "kl"},
    "rloo": {"reward", "reward_std", "kl"},
    "sft": {"loss"},
    "kto": {"loss"},
}
SNAPSHOT_KINDS = {
    "reward": DatasetSnapshot.Kind.PREFERENCE,
    "dpo": DatasetSnapshot.Kind.PREFERENCE,
    "grpo": DatasetSnapshot.Kind.PROMPTS,
    "rloo": DatasetSnapshot.Kind.PROMPTS,
    "sft": DatasetSnapshot.Kind.SFT,
    "kto": DatasetSnapshot.Kind.KTO,
}


class Workers:
    """The module's worker, started again (with a fresh log) when a test has killed it."""

    def __init__(self, redis_url, folder):
        self.redis_url = redis_url
        self.folder = folder
        self.worker = None
        self.started = 0

    def current(self):
        if self.worker is None or self.worker.process.poll() is not None:
            self.start()
        return self.worker

    def start(self):
        self.stop()
        self.started += 1
        worker = CeleryWorker(self.redis_url, self.folder / f"worker-{self.started}.log")
        self.worker = worker.__enter__()
        return self.worker

    def stop(self):
        if self.worker is not None:
            self.worker.__exit__(None, None, None)
            self.worker = None


@pytest.fixture(scope="module")
def workers(django_db_setup, redis_url, tmp_path_factory):
    folder = tmp_path_factory.mktemp("training-suite")
    # Users are made per test; the real password hasher would cost seconds each.
    fast = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    with override_settings(PREFLAB_MODELS_DIR=folder / "models", MEDIA_ROOT=folder / "media",
                           PASSWORD_HASHERS=fast):
        pool = Workers(redis_url, folder)
        try:
            yield pool
        finally:
            pool.stop()


@pytest.fixture
def worker(workers, transactional_db):
    worker = workers.current()
    yield worker
    # Shown by pytest only when the test failed.
    print(f"--- worker log (tail) ---\n{worker.output()}")


@pytest.fixture(scope="module")
def reward_model_dir(tiny_model_dir, tmp_path_factory):
    """A reward model trained for a few steps in this process: online runs need one."""
    from tests.ml_support import build_tiny_reward_model

    return build_tiny_reward_model(tiny_model_dir, tmp_path_factory.mktemp("rm") / "rm")


def annotated_project(tiny_model_dir, slug="suite", n_rows=12, n_eval=4):
    """Demo rows (the last n_eval held out) ranked and corrected by two annotators.

    Rankings give preference pairs and KTO's best/worst labels, corrections give SFT targets
    (and KTO's good edit / bad original); both annotators judge every item (overlap 2).
    Returns (project, base model version, annotators).
    """
    project = factories.project(slug, overlap=2, judgement_kinds=["ranking", "correction"],
                                review_threshold=None)
    rows = [json.loads(line) for line in DEMO.read_bytes().splitlines()[:n_rows]]
    for row in rows[n_rows - n_eval:]:
        row["split"] = "eval"
    import_file(project, "demo.jsonl", "\n".join(json.dumps(r) for r in rows).encode())
    base = ModelVersion.objects.create(name="tiny-base", source=str(tiny_model_dir))
    annotators = [factories.user(f"{slug}-ann{i}", "Annotator") for i in (1, 2)]
    for user in annotators:
        while (assignment := queue.claim_next(project, user)) is not None:
            texts = dict(Candidate.objects.filter(id__in=assignment.shown_order)
                         .values_list("id", "text"))
            # A stand-in for taste: longer answers first.
            ranking = sorted(assignment.shown_order, key=lambda cid: (-len(texts[cid]), cid))
            best = ranking[0]
            answer = Answer(ranking=[[cid] for cid in ranking], correction_of=best,
                            correction=f"{texts[best]} Anything else, ask {user.username}.")
            submit_judgement(user, assignment.pk, answer, uuid.uuid4())
    open_items = Item.objects.filter(project=project, is_gold=False)
    assert open_items.exists() and not open_items.filter(judgement_count__lt=2).exists()
    return project, base, annotators


def register_reward_model(project, path):
    version = ModelVersion.objects.create(name="tiny-rm", kind=ModelVersion.Kind.REWARD,
                                          project=project, source=str(path))
    project.reward_model = version
    project.save(update_fields=["reward_model"])
    return version


def wait_finished(model, pk, timeout, message):
    def done():
        row = model.objects.get(pk=pk)
        return row if row.status in FINISHED else None

    return wait_for(done, timeout, message=message)


def log_text(worker):
    return worker.log_path.read_text(errors="replace")


def weights_changed(path_a, path_b, reward=False):
    """True if any weight differs; for reward models only the body (the head starts random)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification

    loader = AutoModelForSequenceClassification if reward else AutoModelForCausalLM
    a = loader.from_pretrained(path_a).state_dict()
    b = loader.from_pretrained(path_b).state_dict()
    if reward:
        a = {k: v for k, v in a.items() if not k.startswith("score.")}
        b = {k: v for k, v in b.items() if not k.startswith("score.")}
    assert a and a.keys() == b.keys()
    return any(not torch.equal(a[k], b[k]) for k in a)


def check_snapshot(snapshot, project, kind):
    """The file is the recorded one, and no prompt is on both sides of the split."""
    path = snapshot_file(snapshot)
    assert snapshot.kind == kind and path.is_file()
    assert hashlib.sha256(path.read_bytes()).hexdigest() == snapshot.sha256
    rows = read_jsonl(path)
    assert len(rows) == snapshot.rows == snapshot.train_rows + snapshot.eval_rows
    train = {prompt_key(r["prompt"]) for r in rows if r["split"] == "train"}
    held_out = {prompt_key(r["prompt"]) for r in rows if r["split"] == "eval"}
    assert train and held_out and not train & held_out
    eval_prompts = {prompt_key(p.conversation)
                    for p in Prompt.objects.filter(project=project, split="eval")}
    assert eval_prompts and not eval_prompts & train
    return rows


@pytest.mark.parametrize("method", list(CONFIGS))
def test_every_method_trains_through_the_worker(method, worker, tiny_model_dir,
                                                reward_model_dir):
    project, base, _ = annotated_project(tiny_model_dir, slug=f"suite-{method}")
    if method in ("grpo", "rloo"):
        register_reward_model(project, reward_model_dir)

    run = services.launch_run(project, CONFIGS[method], base)
    assert run.method == method and run.status == "queued"
    run = wait_finished(TrainingRun, run.pk, 240, f"the {method} run")
    assert run.status == "succeeded", f"{run.error}\n{run.traceback}\n{worker.output()}"

    names = set(RunMetric.objects.filter(run=run).values_list("name", flat=True))
    assert KEY_METRICS[method] <= names, names
    steps = set(RunMetric.objects.filter(run=run, name=min(KEY_METRICS[method]))
                .values_list("step", flat=True))
    assert steps >= {1, 2}
    assert run.progress_step == run.progress_total == 2 and run.started_at and run.finished_at

    version = run.output_model
    is_reward = method == "reward"
    assert version.parent == base and version.project == project
    assert version.kind == ("reward" if is_reward else "policy")
    assert version.metrics == run.eval_metrics and run.eval_metrics
    assert ModelVersion.objects.filter(project=project, kind=version.kind,
                                       parent=base).get() == version

    check_snapshot(run.snapshot, project, SNAPSHOT_KINDS[method])
    assert run.snapshot.filters["eval_fraction"] == CONFIGS[method].eval_fraction
    assert weights_changed(base.source, version.source, reward=is_reward)

    if is_reward:
        # The new reward model becomes the project's and scores its open items (none left).
        project.refresh_from_db()
        assert project.reward_model == version
        wait_for(lambda: re.search(r"rlhf\.tasks\.score_open_items\[[^\]]+\] succeeded",
                                   log_text(worker)), 60, message="the scoring task")


def test_a_running_sft_run_is_cancelled_from_the_page_service(worker, tiny_model_dir):
    project, base, _ = annotated_project(tiny_model_dir, slug="suite-cancel")
    config = SFTRunConfig(max_steps=2000, per_device_train_batch_size=2, eval_fraction=0.0)
    run = services.launch_run(project, config, base)
    wait_for(lambda: TrainingRun.objects.filter(pk=run.pk, progress_step__gte=1).exists()
             or TrainingRun.objects.get(pk=run.pk).status in FINISHED, 180,
             message="the first step")
    run.refresh_from_db()
    assert run.status == "running", f"{run.error}\n{worker.output()}"

    services.request_cancel(run)
    run = wait_finished(TrainingRun, run.pk, 60, "the cancellation")
    assert run.status == "cancelled", f"{run.error}\n{worker.output()}"
    assert run.output_model is None and run.progress_step < 2000
    assert not ModelVersion.objects.exclude(pk=base.pk).exists()


@pytest.mark.parametrize(
    ("method", "changes", "message"),
    [
        ("grpo", {}, "needs a reward model"),
        ("kto", {"per_device_train_batch_size": 1}, "batch size of at least 2"),
        ("dpo", {"early_stopping_patience": 2, "eval_steps": 0}, "early stopping needs"),
        ("sft", {"eval_fraction": 0.9}, "eval_fraction must be in"),
        ("rloo", {"reward_model": 999}, "is not a reward model"),
    ],
)
def test_an_invalid_run_is_refused_before_anything_is_queued(
    db, method, changes, message, django_capture_on_commit_callbacks
):
    project = factories.project("refused")
    base = ModelVersion.objects.create(name="base", source="/nowhere")
    config = type(CONFIGS[method])(**{**CONFIGS[method].to_dict(), **changes})
    with (django_capture_on_commit_callbacks() as callbacks,
          pytest.raises(services.InvalidRun, match=message)):
        services.launch_run(project, config, base)
    assert not callbacks and not TrainingRun.objects.exists()


def test_a_reward_model_is_not_a_base_policy(db):
    project = factories.project("refused-rm")
    rm = ModelVersion.objects.create(name="rm", kind="reward", source="/rm", project=project)
    with pytest.raises(services.InvalidRun, match="not a policy"):
        services.launch_run(project, CONFIGS["dpo"], rm)
    assert not TrainingRun.objects.exists()


def test_a_trained_policy_is_evaluated_by_the_reward_model_and_by_people(
    worker, tiny_model_dir, reward_model_dir
):
    project, base, annotators = annotated_project(tiny_model_dir, slug="suite-eval")
    register_reward_model(project, reward_model_dir)
    # A few more steps than the smallest run, so that the policy's answers differ from its
    # parent's on most held-out prompts (identical answers make no human-evaluation item).
    config = DPORunConfig(**{**CONFIGS["dpo"].to_dict(), "max_steps": 4})
    run = services.launch_run(project, config, base)
    run = wait_finished(TrainingRun, run.pk, 240, "the DPO run")
    assert run.status == "succeeded", f"{run.error}\n{run.traceback}\n{worker.output()}"
    policy = run.output_model
    held_out = list(Prompt.objects.filter(project=project, split="eval")
                    .values_list("id", flat=True))
    sample = SampleConfig(max_new_tokens=8)

    evaluation = services.launch_evaluation(project, policy, "reward", prompts=4, config=sample)
    assert evaluation.prompt_ids == held_out and evaluation.baseline == base
    evaluation = wait_finished(PolicyEvaluation, evaluation.pk, 180, "the reward evaluation")
    assert evaluation.status == "succeeded", f"{evaluation.error}\n{worker.output()}"
    results = evaluation.results
    assert results["n"] == len(held_out) == evaluation.done
    assert 0.0 <= results["win_rate"] <= 1.0
    assert results["ci_low"] <= results["win_rate"] <= results["ci_high"]
    assert results["prompt_ids"] == held_out

    evaluation = services.launch_evaluation(project, policy, "human", prompts=4, config=sample)
    evaluation = wait_finished(PolicyEvaluation, evaluation.pk, 180, "the human evaluation")
    assert evaluation.status == "succeeded", f"{evaluation.error}\n{worker.output()}"
    items = list(evaluation.items.all())
    assert items, "the policy answered every held-out prompt like its parent"
    assert len(items) + evaluation.results["identical_answers"] == len(held_out)
    owners = {}
    for item in items:
        candidates = list(item.candidates.all())
        assert sorted(c.model_version_id for c in candidates) == sorted([policy.pk, base.pk])
        owners.update({c.pk: c.model_version_id for c in candidates})

    judged = 0
    for user in annotators:
        while (assignment := queue.claim_next(project, user)) is not None:
            assert assignment.item in items
            # People prefer the new policy's answer every time.
            ranking = sorted(assignment.shown_order, key=lambda cid: owners[cid] != policy.pk)
            submit_judgement(user, assignment.pk, Answer(ranking=[[c] for c in ranking]),
                             uuid.uuid4())
            judged += 1
    assert judged == 2 * len(items)
    results = services.human_results(evaluation)
    assert results["n"] == judged and results["win_rate"] == 1.0
    assert results["items"] == len(items) and results["wins"] == judged


def test_a_killed_worker_leaves_a_failed_run_that_a_new_worker_does_not_restart(
    workers, worker, tiny_model_dir
):
    from rlhf import tasks
    from rlhf.ml.common import checkpoint_step

    project, base, _ = annotated_project(tiny_model_dir, slug="suite-kill")
    config = DPORunConfig(max_steps=500, per_device_train_batch_size=2, eval_fraction=0.0,
                          max_length=64, checkpoint_steps=3)
    run = services.launch_run(project, config, base)
    wait_for(lambda: checkpoint_step(runner.checkpoint_dir(run.pk))
             or TrainingRun.objects.get(pk=run.pk).status in FINISHED, 180,
             message="the first checkpoint")
    run.refresh_from_db()
    assert run.status == "running", f"{run.error}\n{worker.output()}"

    killed = worker.kill()
    assert len(killed) >= 2  # the worker and its pool child, which was training
    run.refresh_from_db()
    assert run.status == "running" and run.progress_step < 500
    # Nothing beats for the run any more: once its heartbeat is over a second old, the
    # periodic check fails it (and leaves a fresh run alone until then).
    assert wait_for(lambda: runner.fail_stale_runs(max_age_seconds=1), 30,
                    message="the stale run to be failed") == 1
    run.refresh_from_db()
    assert run.status == "failed" and "stopped reporting" in run.error
    assert run.finished_at and run.output_model is None

    # The lost message comes back to a new worker one day; it must not train the run again.
    new_worker = workers.current()
    assert new_worker is not worker
    tasks.train.delay(run.pk)
    wait_for(lambda: f"run {run.pk} is not queued; skipping" in log_text(new_worker), 60,
             message="the new worker to skip the failed run")
    started_at = run.started_at
    run.refresh_from_db()
    assert run.status == "failed" and run.started_at == started_at
    assert not ModelVersion.objects.exclude(pk=base.pk).exists()

    # Asked to retry, it resumes from the last checkpoint the killed worker saved, on the
    # same snapshot, and logs from the step after it (the new judgements do not count).
    step = runner.resume_point(run)
    assert step and step % 3 == 0 and step <= run.progress_step
    retry = services.retry_run(run)
    assert retry.resumed_from == run
    wait_for(lambda: RunMetric.objects.filter(run=retry).exists()
             or TrainingRun.objects.get(pk=retry.pk).status in FINISHED, 180,
             message="the resumed run's first step")
    retry.refresh_from_db()
    assert retry.status == "running", f"{retry.error}\n{log_text(new_worker)}"
    assert retry.resumed_at_step == step and retry.snapshot_id == run.snapshot_id
    assert min(RunMetric.objects.filter(run=retry).values_list("step", flat=True)) == step + 1
    assert runner.resume_point(run) is None  # the checkpoint moved to the retry
    services.request_cancel(retry)
    wait_for(lambda: TrainingRun.objects.get(pk=retry.pk).status in FINISHED, 60,
             message="the resumed run to stop")
    retry.refresh_from_db()
    assert retry.status == "cancelled"
    assert not runner.checkpoint_dir(retry.pk).exists()  # a cancelled run keeps none
