"""Evaluations: launched from the model page, refused when they cannot run, human results."""

import uuid

import pytest
from django.urls import reverse

from annotate import queue
from annotate.importing import create_item
from annotate.models import Candidate
from annotate.services import submit_judgement
from rlhf import services
from rlhf.models import DatasetSnapshot, ModelVersion, PolicyEvaluation, TrainingRun
from tests import factories


@pytest.fixture
def versions(project):
    base = ModelVersion.objects.create(name="base", source="/b")
    tuned = ModelVersion.objects.create(name="tuned", source="/t", parent=base, project=project)
    return base, tuned


@pytest.fixture
def eval_prompts(project):
    return [factories.prompt(project, f"Held-out question {i}?", split="eval") for i in range(3)]


def test_it_queues_a_reward_evaluation_on_the_eval_prompts(client, engineer, project, versions,
                                                           eval_prompts, monkeypatch,
                                                           django_capture_on_commit_callbacks):
    sent = []
    monkeypatch.setattr("rlhf.tasks.evaluate.apply_async", lambda args, **kw: sent.append(args))
    _, tuned = versions
    rm = ModelVersion.objects.create(name="rm", kind="reward", source="/rm", project=project)
    client.force_login(engineer)
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(reverse("rlhf-evaluation-new", args=[tuned.pk]),
                               {"judge": "reward", "reward_model": rm.pk, "prompts": "2"})
    evaluation = PolicyEvaluation.objects.get()
    assert response.status_code == 302 and response["Location"] == evaluation.get_absolute_url()
    assert evaluation.baseline == tuned.parent and evaluation.reward_model == rm
    assert evaluation.prompt_ids == [p.pk for p in eval_prompts[:2]]
    assert sent == [[evaluation.pk]]


def test_it_falls_back_to_the_prompts_the_run_held_out(project, versions, settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path
    base, tuned = versions
    kept, held = factories.prompt(project, "train me"), factories.prompt(project, "hold me")
    (tmp_path / "s.jsonl").write_text(
        f'{{"prompt_id": "{kept.pk}", "split": "train"}}\n'
        f'{{"prompt_id": "{held.pk}", "split": "eval"}}\n'
    )
    snapshot = DatasetSnapshot.objects.create(project=project, path="s.jsonl", sha256="0", rows=2)
    TrainingRun.objects.create(project=project, base_model=base, output_model=tuned,
                               snapshot=snapshot, status="succeeded")
    assert services.held_out_prompts(project, tuned, 10) == [held.pk]


@pytest.mark.parametrize(
    ("judge", "message"),
    [("reward", "needs a reward model"), ("human", "No held-out prompts"),
     ("oracle", "Unknown judge")],
)
def test_it_refuses_evaluations_that_cannot_run(project, versions, judge, message):
    with pytest.raises(services.InvalidRun, match=message):
        services.launch_evaluation(project, versions[1], judge)
    assert not PolicyEvaluation.objects.exists()


def test_a_base_model_has_nothing_to_compare_with(project, versions):
    with pytest.raises(services.InvalidRun, match="no parent policy"):
        services.launch_evaluation(project, versions[0], "human")


def test_human_results_count_each_judgement_with_names_hidden(client, project, versions,
                                                              annotator, manager):
    base, tuned = versions
    evaluation = PolicyEvaluation.objects.create(project=project, policy=tuned, baseline=base,
                                                 judge="human", status="succeeded")
    for i in range(2):
        prompt = factories.prompt(project, f"Eval prompt {i}", split="eval")
        pair = Candidate.objects.bulk_create([
            Candidate(prompt=prompt, text=f"new answer {i}", origin="model", model_version=tuned),
            Candidate(prompt=prompt, text=f"old answer {i}", origin="model", model_version=base),
        ])
        evaluation.items.add(create_item(project, prompt, pair))
    client.force_login(annotator)
    judged = 0
    while (assignment := queue.claim_next(project, annotator)) is not None:
        if not evaluation.items.filter(pk=assignment.item_id).exists():
            queue_item = assignment.shown_order
            submit_judgement(annotator, assignment.pk, [[c] for c in queue_item], uuid.uuid4())
            continue
        page = client.get(reverse("annotate-work", args=[project.slug])).content.decode()
        assert "tuned" not in page and "base" not in page.split("<main", 1)[1]
        owner = dict(Candidate.objects.filter(pk__in=assignment.shown_order)
                     .values_list("pk", "model_version__name"))
        new_first = sorted(assignment.shown_order, key=lambda c: owner[c] != "tuned")
        # The first judgement prefers the new model's answer, the second the old one's.
        ranking = new_first if judged == 0 else list(reversed(new_first))
        submit_judgement(annotator, assignment.pk, [[c] for c in ranking], uuid.uuid4())
        judged += 1
    assert judged == 2
    results = services.human_results(evaluation)
    assert results["n"] == 2 and results["wins"] == 1 and results["losses"] == 1
    assert results["win_rate"] == 0.5 and results["items"] == 2
    client.force_login(manager)
    html = client.get(evaluation.get_absolute_url()).content.decode()
    assert 'data-testid="win-rate">0.500' in html and "wins 1, ties 0, losses 1" in html


def test_only_engineers_launch_and_annotators_cannot_see_evaluations(client, annotator, manager,
                                                                     project, versions):
    base, tuned = versions
    evaluation = PolicyEvaluation.objects.create(project=project, policy=tuned, baseline=base,
                                                 judge="reward")
    client.force_login(manager)
    assert client.post(reverse("rlhf-evaluation-new", args=[tuned.pk])).status_code == 403
    assert client.get(evaluation.get_absolute_url()).status_code == 200
    fragment = client.get(evaluation.get_absolute_url(), HTTP_HX_REQUEST="true")
    assert "<html" not in fragment.content.decode()
    client.force_login(annotator)
    assert client.get(evaluation.get_absolute_url()).status_code == 403
