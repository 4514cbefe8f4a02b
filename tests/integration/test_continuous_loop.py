"""The continuous loop end to end through real parts: production conversations ingested,
simulated annotators, a real Celery worker on Redis training TRL on the tiny model, the gate,
promotion and new candidates from the promoted model; and a gate that refuses."""

import json
from pathlib import Path

import pytest

from annotate.importing import import_file
from annotate.ingestion import ingest
from annotate.models import Candidate, Conversation, Item
from annotate.simulation import simulate
from rlhf import loop, tasks
from rlhf.models import GenerationJob, LoopEvent, LoopIteration, LoopPolicy, ModelVersion
from tests import factories
from tests.services import wait_for

pytestmark = pytest.mark.integration
DEMO = Path(__file__).resolve().parents[2] / "demo" / "support_prompts.jsonl"
SMALL = {"max_steps": 3, "per_device_train_batch_size": 4, "max_length": 128,
         "eval_fraction": 0.0}


def conversations(rows):
    """Production chats about the demo prompts: thumbs down, or corrected by a live agent."""
    out = []
    for i, row in enumerate(rows):
        question = row["prompt"] if isinstance(row["prompt"], str) else row["prompt"][-1]["content"]
        out.append({
            "external_id": f"chat-{i}",
            "messages": [{"role": "user", "content": f"{question} I'm Dana Whitfield, "
                                                     f"dana.whitfield@example.org"}],
            "reply": "Please wait.",
            "model_version": None,
            "feedback": {"thumb": "down",
                         "correction": (f"Sorry about that, Dana. {row['candidates'][0]}"
                                        if i % 2 == 0 else None),
                         "comment": "unhelpful"},
            "customer": {"name": "Dana Whitfield", "email": "dana.whitfield@example.org"},
        })
    return out


def finished(model, pk, statuses):
    row = model.objects.get(pk=pk)
    return row if row.status in statuses else None


@pytest.fixture
def production_project(celery_worker, tiny_model_dir):
    project = factories.project("support-loop", overlap=2, review_threshold=None,
                                gold_rate=0.0)
    rows = [json.loads(line) for line in DEMO.read_bytes().splitlines()[:12]]
    held_out = rows[:4]
    for row in held_out:
        row["split"] = "eval"
        row.pop("candidates", None)
        row.pop("gold", None)
    import_file(project, "held-out.jsonl", "\n".join(json.dumps(r) for r in held_out).encode())
    base = ModelVersion.objects.create(name="tiny-base", source=str(tiny_model_dir))
    project.current_model = base
    project.save(update_fields=["current_model"])
    return project, base, rows[4:]


def test_ingested_feedback_is_judged_trained_on_gated_promoted_and_generates(
        production_project, celery_worker):
    project, base, rows = production_project
    # 1. Ingest: thumbs-down chats become items; the current model adds fresh candidates.
    result = ingest(project, conversations(rows))
    assert result["created"] == len(rows)
    assert ingest(project, conversations(rows))["created"] == 0  # resent: nothing twice
    stored = " ".join(json.dumps(c.messages) + c.reply + c.correction + c.comment
                      for c in Conversation.objects.filter(project=project))
    assert "Whitfield" not in stored and "dana.whitfield@example.org" not in stored
    jobs = list(GenerationJob.objects.filter(project=project))
    for job in jobs:
        wait_for(lambda j=job: finished(GenerationJob, j.pk, ("succeeded", "failed")), 240,
                 message=f"generation job {job.pk}")
        job.refresh_from_db()
        assert job.status == "succeeded", job.error
    items = Item.objects.filter(project=project, prompt__source="production")
    assert items.count() == len(rows)
    assert Candidate.objects.filter(prompt__source="production", model_version=base).exists()

    # 2. Simulated annotators judge every open item through the humans' code path.
    judged = simulate(project, annotators=3, noise=0.1, seed=1)
    assert judged.judgements >= 2 * len(rows)

    # 3. Beat's tick (sent through the broker, run by the worker) starts the iteration.
    policy = loop.policy_for(project)
    policy.enabled = True
    policy.min_new_judgements = judged.judgements
    policy.gate_win_rate = 0.0  # this test follows the promote path; the next one refuses
    policy.eval_prompts = 4
    policy.generate_prompts = 4
    policy.candidates_per_prompt = 2
    policy.run_settings = {"reward": dict(SMALL), "dpo": dict(SMALL)}
    policy.save()
    tasks.loop_tick.apply_async()
    iteration = wait_for(lambda: LoopIteration.objects.filter(project=project).first(), 60,
                         message="the tick to start an iteration")
    iteration = wait_for(
        lambda: finished(LoopIteration, iteration.pk, ("promoted", "refused", "failed")), 600,
        message="the loop iteration")
    assert iteration.status == "promoted", iteration.error
    assert [r.method for r in iteration.runs.order_by("id")] == ["reward", "dpo"]
    candidate = iteration.candidate
    project.refresh_from_db()
    assert project.current_model == candidate and candidate.parent == base
    assert iteration.evaluation.results["n"] == 4 and iteration.win_rate is not None

    # 4. New candidates from the promoted model reach the queue.
    job = wait_for(lambda: finished(GenerationJob, iteration.generation_id,
                                    ("succeeded", "failed")), 240, message="generation")
    assert job.status == "succeeded", job.error
    fresh = Candidate.objects.filter(model_version=candidate)
    assert fresh.count() == job.candidates_created > 0
    assert Item.objects.filter(candidates__in=fresh).distinct().exists()
    kinds = set(LoopEvent.objects.filter(iteration=iteration).values_list("kind", flat=True))
    assert {"started", "run_finished", "evaluated", "promoted", "generation_queued"} <= kinds
    # Nothing new since: the next tick starts nothing.
    assert loop.tick() == []


def test_the_gate_refuses_a_model_that_is_no_better_and_the_current_model_stays(
        production_project, celery_worker):
    project, base, rows = production_project
    ingest(project, conversations(rows[:4]))
    for job in GenerationJob.objects.filter(project=project):
        wait_for(lambda j=job: finished(GenerationJob, j.pk, ("succeeded", "failed")), 240,
                 message=f"generation job {job.pk}")
    simulate(project, annotators=3, noise=0.1, seed=2)
    LoopPolicy.objects.filter(pk=loop.policy_for(project).pk).update(
        enabled=True, gate_win_rate=0.9, pause_on_refusal=True, eval_prompts=4,
        # Learning rate 1e-8: the candidate answers as the current model does (same seed),
        # every comparison ties, its win-rate is 0.5, below the gate.
        run_settings={"reward": dict(SMALL),
                      "dpo": dict(SMALL, max_steps=1, learning_rate=1e-8)})
    iteration = loop.start_iteration(project, LoopIteration.Trigger.MANUAL)
    iteration = wait_for(
        lambda: finished(LoopIteration, iteration.pk, ("promoted", "refused", "failed")), 600,
        message="the loop iteration")
    assert iteration.status == "refused", iteration.error
    assert iteration.win_rate < 0.9
    project.refresh_from_db()
    assert project.current_model == base
    policy = loop.policy_for(project)
    assert policy.paused and "refused" in policy.paused_reason
    assert not GenerationJob.objects.filter(model_version=iteration.candidate).exists()
    # Paused: beat's tick starts nothing, however many judgements arrive.
    LoopPolicy.objects.filter(pk=policy.pk).update(min_new_judgements=0)
    assert loop.tick() == []
