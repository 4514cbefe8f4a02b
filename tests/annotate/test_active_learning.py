"""Active learning: a reward model scores open items and the queue hands out the closest first."""

import pytest
from django.contrib.auth.models import User

from annotate import queue
from annotate.importing import create_item
from annotate.models import UNSCORED_MARGIN, Candidate, Item
from rlhf import runner, services
from rlhf.ml.reward import score
from rlhf.models import ModelVersion
from tests import factories


@pytest.fixture(scope="module")
def reward_dir(tiny_model_dir, tmp_path_factory):
    from tests.ml_support import build_tiny_reward_model

    return build_tiny_reward_model(tiny_model_dir, tmp_path_factory.mktemp("al") / "rm")


@pytest.fixture
def scored_project(db, reward_dir):
    """Five open items of 3 candidates, one of 1, a closed one and a gold one, under an RM."""
    project = factories.project_with_items(n_prompts=5, n_candidates=3,
                                           ordering="active_learning")
    made = {}
    for key, n in (("lonely", 1), ("closed", 2), ("gold", 2)):
        prompt = factories.prompt(project, f"Can I pay by invoice ({key})?", key)
        answers = [Candidate.objects.create(prompt=prompt, text=f"Reply {j}.") for j in range(n)]
        made[key] = (answers, create_item(project, prompt, answers))
    Item.objects.filter(pk=made["closed"][1].pk).update(open_slots=0)
    answers, gold = made["gold"]
    gold.delete()
    create_item(project, gold.prompt, answers, gold_ranking=[[answers[0].pk], [answers[1].pk]])
    version = ModelVersion.objects.create(project=project, name="rm", source=reward_dir,
                                          kind=ModelVersion.Kind.REWARD)
    project.reward_model = version
    project.save(update_fields=["reward_model"])
    return project, version


def expected_margin(reward_dir, item):
    texts = [c.text for c in item.candidates.all()]
    values = sorted(score(reward_dir, [item.prompt.conversation] * len(texts), texts))
    return min(b - a for a, b in zip(values, values[1:], strict=False))


def test_it_writes_each_open_items_smallest_score_gap(scored_project, reward_dir):
    project, version = scored_project

    scored = runner.score_open_items(project.pk, version.pk, batch_size=4)

    assert scored == 5
    items = {item.prompt.external_id: item for item in Item.objects.filter(project=project)}
    for key in ("q0", "q1", "q2", "q3", "q4"):
        item = items[key]
        assert item.rm_margin != UNSCORED_MARGIN
        assert item.rm_margin == pytest.approx(expected_margin(reward_dir, item), abs=1e-5)
        assert item.rm_margin >= 0
    # One candidate has no gap; closed and gold items are not open and are left alone.
    assert items["lonely"].rm_margin == UNSCORED_MARGIN
    closed_and_gold = Item.objects.filter(project=project, open_slots=0)
    assert closed_and_gold.count() == 2
    assert set(closed_and_gold.values_list("rm_margin", flat=True)) == {UNSCORED_MARGIN}
    # Scoring only writes the margin: open slots are as they were.
    assert set(Item.objects.filter(project=project, is_gold=False).exclude(
        open_slots=0).values_list("open_slots", flat=True)) == {1}


def test_it_hands_out_the_smallest_margin_first_and_unscored_last(scored_project):
    project, version = scored_project
    runner.score_open_items(project.pk, version.pk)
    open_items = Item.objects.filter(project=project, open_slots__gt=0)
    expected = [item.pk for item in sorted(open_items, key=lambda i: (i.rm_margin, i.pk))]
    assert len(expected) == 6

    handed_out = []
    for index in range(len(expected)):
        # Any user can claim; no password hashing keeps this fast.
        assignment = queue.claim_next(project, User.objects.create(username=f"al{index}"))
        handed_out.append(assignment.item_id)

    assert handed_out == expected
    assert Item.objects.get(pk=handed_out[-1]).rm_margin == UNSCORED_MARGIN
    margins = [Item.objects.get(pk=pk).rm_margin for pk in handed_out]
    assert margins == sorted(margins)


def test_it_does_not_score_with_a_reward_model_the_project_has_left(scored_project):
    project, version = scored_project
    newer = ModelVersion.objects.create(project=project, name="rm2", source=version.source,
                                        kind=ModelVersion.Kind.REWARD)
    project.reward_model = newer
    project.save(update_fields=["reward_model"])

    assert runner.score_open_items(project.pk, version.pk) == 0
    assert set(Item.objects.filter(project=project).values_list("rm_margin", flat=True)) == {
        UNSCORED_MARGIN
    }


def test_it_refuses_to_score_with_a_policy(scored_project):
    project, _ = scored_project
    policy = ModelVersion.objects.create(name="policy", source="/models/base")
    with pytest.raises(ValueError, match="not a reward model"):
        runner.score_open_items(project.pk, policy.pk)
    with pytest.raises(ValueError, match="not a reward model"):
        services.launch_scoring(project, policy)


def test_it_enqueues_rescoring_after_commit_and_points_the_project_at_the_model(
    scored_project, monkeypatch, django_capture_on_commit_callbacks
):
    project, version = scored_project
    project.reward_model = None
    project.save(update_fields=["reward_model"])
    sent = []
    monkeypatch.setattr("rlhf.tasks.score_open_items.apply_async",
                        lambda args, **kw: sent.append(args))

    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        services.launch_scoring(project, version)
        assert sent == []

    project.refresh_from_db()
    assert project.reward_model == version
    assert len(callbacks) == 1
    callbacks[0]()
    assert sent == [[project.pk, version.pk]]


def test_it_says_so_when_the_broker_is_down(scored_project, django_capture_on_commit_callbacks):
    from config.devservices import free_port
    from tests.services import use_broker

    project, version = scored_project
    old = use_broker(f"redis://127.0.0.1:{free_port()}/0")
    try:
        with (
            pytest.raises(services.BrokerUnavailable, match="task queue is unreachable"),
            django_capture_on_commit_callbacks(execute=True),
        ):
            services.launch_scoring(project, version)
    finally:
        use_broker(old)


def test_it_only_logs_a_down_broker_for_the_worker_registering_a_run(
    scored_project, django_capture_on_commit_callbacks, caplog
):
    from config.devservices import free_port
    from tests.services import use_broker

    project, version = scored_project
    old = use_broker(f"redis://127.0.0.1:{free_port()}/0")
    try:
        with django_capture_on_commit_callbacks(execute=True):
            services.launch_scoring(project, version, robust=True)
    finally:
        use_broker(old)
    assert "could not enqueue rlhf.tasks.score_open_items" in caplog.text
    assert "open items were not re-scored" in caplog.text
    project.refresh_from_db()
    assert project.reward_model == version


def test_the_task_is_routed_with_generation_work(settings):
    from rlhf import tasks

    route = settings.CELERY_TASK_ROUTES[tasks.score_open_items.name]
    assert route == settings.CELERY_TASK_ROUTES["rlhf.tasks.generate"]
