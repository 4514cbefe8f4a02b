"""The loop through real parts: a Celery worker process, Redis, TRL on a tiny local model."""

import uuid
from pathlib import Path

import pytest

from annotate import queue
from annotate.importing import import_file
from annotate.models import Candidate, Item
from annotate.services import submit_judgement
from rlhf import services
from rlhf.ml.config import DPORunConfig, SampleConfig
from rlhf.models import GenerationJob, ModelVersion, RunMetric, TrainingRun
from tests import factories
from tests.services import wait_for

pytestmark = pytest.mark.integration
DEMO = Path(__file__).resolve().parents[2] / "demo" / "support_prompts.jsonl"


def demo_project(n_rows=10):
    project = factories.project("loop", overlap=1)
    data = b"\n".join(DEMO.read_bytes().splitlines()[:n_rows])
    import_file(project, "demo.jsonl", data)
    return project


def finished(model, pk):
    row = model.objects.get(pk=pk)
    return row if row.status in ("succeeded", "failed", "cancelled") else None


def annotate_everything(project, user):
    """Judge every open item, preferring longer answers (a stand-in for a human's taste)."""
    count = 0
    while (assignment := queue.claim_next(project, user)) is not None:
        texts = dict(Candidate.objects.filter(id__in=assignment.shown_order)
                     .values_list("id", "text"))
        ranking = sorted(assignment.shown_order, key=lambda cid: -len(texts[cid]))
        submit_judgement(user, assignment.pk, [[cid] for cid in ranking], uuid.uuid4())
        count += 1
    return count


def state_dicts_differ(path_a, path_b):
    import torch
    from transformers import AutoModelForCausalLM

    a = AutoModelForCausalLM.from_pretrained(path_a).state_dict()
    b = AutoModelForCausalLM.from_pretrained(path_b).state_dict()
    assert a.keys() == b.keys()
    return any(not torch.equal(a[k], b[k]) for k in a)


def test_it_generates_annotates_and_trains_dpo_end_to_end(celery_worker, tiny_model_dir):
    project = demo_project()
    base = ModelVersion.objects.create(name="tiny-base", source=str(tiny_model_dir))
    items_before = Item.objects.filter(project=project).count()

    prompt_ids = services.prompts_for_generation(project, 4)
    job = services.launch_generation(
        project, base, SampleConfig(num_candidates=2, max_new_tokens=12, batch_size=8), prompt_ids
    )
    job = wait_for(lambda: finished(GenerationJob, job.pk), 180, message="generation")
    assert job.status == "succeeded", job.error + celery_worker.output()
    assert (job.done, job.total, job.candidates_created) == (4, 4, 8)
    generated = Candidate.objects.filter(prompt__project=project, origin="model",
                                         model_version=base)
    assert generated.count() == 8 and all(c.text.strip() for c in generated)
    assert Item.objects.filter(project=project).count() == items_before + 4

    annotator = factories.user("ann", "Annotator")
    # Gold items among the demo rows are checks, not open work (the gold rate here is 0).
    gold = Item.objects.filter(project=project, is_gold=True).count()
    assert annotate_everything(project, annotator) == items_before + 4 - gold

    config = DPORunConfig(max_steps=4, per_device_train_batch_size=4, learning_rate=5e-3,
                          eval_fraction=0.2, max_length=128)
    run = services.launch_run(project, config, base)
    run = wait_for(lambda: finished(TrainingRun, run.pk), 300, message="the DPO run")
    assert run.status == "succeeded", f"{run.error}\n{run.traceback}\n{celery_worker.output()}"

    steps = set(RunMetric.objects.filter(run=run, name="loss").values_list("step", flat=True))
    assert len(steps) >= 3
    names = set(RunMetric.objects.filter(run=run).values_list("name", flat=True))
    assert {"rewards/margins", "rewards/accuracies", "eval_loss"} <= names
    assert run.snapshot.rows > 0 and run.snapshot.eval_rows > 0
    assert run.snapshot.train_rows + run.snapshot.eval_rows == run.snapshot.rows
    assert "eval_loss" in run.eval_metrics and run.heartbeat_at and run.started_at

    version = run.output_model
    assert version.parent == base and version.kind == "policy"
    assert state_dicts_differ(base.source, version.source)


def test_it_cancels_a_running_run_within_a_step(celery_worker, tiny_model_dir):
    project = demo_project(n_rows=8)
    annotate_everything(project, factories.user("ann2", "Annotator"))
    base = ModelVersion.objects.create(name="tiny-base", source=str(tiny_model_dir))
    config = DPORunConfig(max_steps=2000, per_device_train_batch_size=2, eval_fraction=0.0,
                          max_length=64)
    run = services.launch_run(project, config, base)
    wait_for(lambda: RunMetric.objects.filter(run_id=run.pk, name="loss").exists()
             or finished(TrainingRun, run.pk), 180, message="the first logged step")
    run.refresh_from_db()
    assert run.status == "running", f"{run.error}\n{celery_worker.output()}"
    services.request_cancel(run)
    run = wait_for(lambda: finished(TrainingRun, run.pk), 60, message="the cancellation")
    assert run.status == "cancelled", f"{run.error}\n{celery_worker.output()}"
    assert run.output_model is None
    last = max(RunMetric.objects.filter(run=run, name="loss").values_list("step", flat=True))
    assert last < 2000


def test_a_redelivered_message_does_not_start_a_run_twice(celery_worker, tiny_model_dir):
    from rlhf import tasks

    project = factories.project("redelivery")
    base = ModelVersion.objects.create(name="tiny-base", source=str(tiny_model_dir))
    run = TrainingRun.objects.create(project=project, base_model=base, config={},
                                     status="succeeded")
    tasks.train.delay(run.pk)
    wait_for(lambda: "not queued; skipping" in celery_worker.output(), 60,
             message="the worker to skip the redelivered run")
    run.refresh_from_db()
    assert run.status == "succeeded" and run.started_at is None
