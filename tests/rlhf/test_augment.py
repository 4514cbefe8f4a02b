"""Prompt augmentation: paraphrases written by the model, train split only, no held-out leakage."""

import pytest
from django.db import IntegrityError, transaction
from django.urls import reverse

from annotate.models import Prompt
from rlhf import augment, services, tasks
from rlhf.ml.config import DPORunConfig
from rlhf.ml.data import prompt_key
from rlhf.models import ModelVersion
from rlhf.snapshots import augmented_keys, build_snapshot, split_rows
from tests import factories

SUPPORT = [
    "Where is my order NW-123456? It was due on Monday.",
    "The zipper on my Summit 45L backpack broke after two days.",
    "Can I change the delivery address for order NW-777001?",
]


@pytest.fixture(autouse=True)
def media(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def tiny(db, tiny_model_dir):
    return ModelVersion.objects.create(name="tiny", source=str(tiny_model_dir))


@pytest.fixture
def shop(db):
    """Train prompts (one multi-turn), a held-out prompt and an existing paraphrase."""
    project = factories.project("shop")
    train = [factories.prompt(project, text, f"t{i}") for i, text in enumerate(SUPPORT[:2])]
    train.append(factories.prompt(project, [
        {"role": "system", "content": "You are Northwind's support assistant."},
        {"role": "user", "content": "Hi, a delivery question."},
        {"role": "assistant", "content": "Sure, what is it?"},
        {"role": "user", "content": SUPPORT[2]},
    ], "t2"))
    held_out = factories.prompt(project, "Do you ship to Norway?", "e0", split="eval")
    paraphrase = factories.prompt(project, "My order NW-123456 has not come yet.", "a0",
                                  augmented_from=train[0], source="augmented")
    return project, train, held_out, paraphrase


def paraphrase(original, text, **fields):
    return Prompt.objects.create(
        project=original.project, conversation=augment.with_last_user_turn(
            original.conversation, text), augmented_from=original, source="augmented", **fields)


# -- writing paraphrases ----------------------------------------------------------------------


def test_it_writes_train_paraphrases_of_train_prompts_only(shop, tiny):
    project, train, held_out, existing = shop
    ids = [p.pk for p in train] + [held_out.pk, existing.pk]
    created_ids = tasks.augment.apply(args=[project.pk, tiny.pk, ids, 2]).get()
    created = list(Prompt.objects.filter(pk__in=created_ids))
    assert created and len(created) <= 2 * len(train)
    assert {p.augmented_from_id for p in created} <= {p.pk for p in train}
    by_id = {p.pk: p for p in train}
    for prompt in created:
        original = by_id[prompt.augmented_from_id]
        assert prompt.is_augmented and prompt.split == "train" and prompt.source == "augmented"
        assert prompt.metadata["augmented"] is True
        assert prompt.metadata["model_version"] == tiny.pk
        # Earlier turns are kept; only the last user turn is reworded.
        assert prompt.conversation[:-1] == original.conversation[:-1]
        assert prompt.conversation[-1]["role"] == "user"
        text = prompt.last_user_message
        assert text.strip() and text != original.last_user_message
    # Nothing for the held-out prompt or for a paraphrase.
    assert not held_out.paraphrases.exists() and not existing.paraphrases.exists()
    # Distinct per original.
    for original in train:
        texts = [augment.normalized(p.last_user_message) for p in original.paraphrases.all()]
        assert len(texts) == len(set(texts))


def test_it_drops_empty_identical_and_duplicate_paraphrases(shop, tiny, monkeypatch):
    project, train, _, existing = shop
    original = train[0]
    outputs = [[
        original.last_user_message,                 # identical
        f"  {original.last_user_message.upper()} ",  # identical but for case and spaces
        "",                                         # empty
        "…",                                        # the sampler's empty fallback
        'Paraphrase: "Has order NW-123456 shipped? It was due Monday."',
        "has order   NW-123456 shipped?  it was due monday.",  # a repeat of the one above
        existing.last_user_message,                 # an earlier paraphrase
    ]]
    seen = {}

    def fake_generate(model_path, prompts, config, **kwargs):
        seen.update(model_path=model_path, prompts=prompts, n=config.num_candidates)
        return outputs

    monkeypatch.setattr("rlhf.ml.generate.generate", fake_generate)
    [created] = augment.paraphrase_prompts(project, tiny, [original.pk], per_prompt=7)
    assert created.last_user_message == "Has order NW-123456 shipped? It was due Monday."
    assert seen["model_path"] == tiny.source and seen["n"] == 7
    # The model is asked to reword the last user message.
    assert original.last_user_message in seen["prompts"][0][-1]["content"]


def test_it_does_nothing_without_eligible_prompts(shop, tiny):
    project, _, held_out, existing = shop
    assert augment.paraphrase_prompts(project, tiny, [held_out.pk, existing.pk]) == []
    other = factories.prompt(factories.project(), "Not this project's prompt")
    assert augment.paraphrase_prompts(project, tiny, [other.pk]) == []


def test_the_database_refuses_an_augmented_held_out_prompt(shop):
    _, train, _, existing = shop
    with pytest.raises(IntegrityError), transaction.atomic():
        paraphrase(train[1], "Any held-out paraphrase", split="eval")
    with pytest.raises(IntegrityError), transaction.atomic():
        Prompt.objects.filter(pk=existing.pk).update(split="eval")
    existing.refresh_from_db()
    assert existing.split == "train"


# -- queueing ---------------------------------------------------------------------------------


def test_launch_queues_on_commit_on_the_generation_queue(shop, tiny,
                                                         django_capture_on_commit_callbacks):
    from config.celery import app

    project, train, held_out, existing = shop
    with django_capture_on_commit_callbacks() as callbacks:
        queued = services.launch_augmentation(
            project, tiny, [p.pk for p in train] + [held_out.pk, existing.pk], 2)
    assert queued == [p.pk for p in train] and len(callbacks) == 1
    assert app.amqp.router.route({}, "rlhf.tasks.augment")["queue"].name == "generation"
    assert not Prompt.objects.filter(source="augmented").exclude(pk=existing.pk).exists()


def test_launch_refuses_reward_models_and_other_projects_versions(shop):
    project, train, _, _ = shop
    reward = ModelVersion.objects.create(name="rm", source="/rm", kind="reward")
    foreign = ModelVersion.objects.create(name="f", source="/f", project=factories.project())
    for version in (reward, foreign):
        with pytest.raises(services.InvalidRun):
            services.launch_augmentation(project, version, [train[0].pk])


def test_launch_says_when_the_broker_is_down(shop, tiny, django_capture_on_commit_callbacks):
    from config.devservices import free_port
    from tests.services import use_broker

    project, train, _, _ = shop
    old = use_broker(f"redis://127.0.0.1:{free_port()}/0")
    try:
        with (pytest.raises(services.BrokerUnavailable, match="task queue is unreachable"),
              django_capture_on_commit_callbacks(execute=True)):
            services.launch_augmentation(project, tiny, [train[1].pk], robust=False)
        # The loop's call only logs it.
        with django_capture_on_commit_callbacks(execute=True):
            assert services.launch_augmentation(project, tiny, [train[1].pk]) == [train[1].pk]
    finally:
        use_broker(old)
    assert not train[1].paraphrases.exists()


# -- snapshots: no leakage --------------------------------------------------------------------


def rows_for(*prompts):
    return [{"prompt": p.conversation, "prompt_id": str(p.external_id or p.pk)} for p in prompts]


def test_split_rows_never_holds_out_paraphrases_and_drops_those_of_held_out_originals():
    originals = [[{"role": "user", "content": f"question {i}"}] for i in range(12)]
    paraphrases = [[{"role": "user", "content": f"reworded question {i}"}] for i in range(12)]
    rows = [{"prompt": c} for c in originals + paraphrases]
    augmented = {prompt_key(p): prompt_key(o) for p, o in zip(paraphrases, originals,
                                                                strict=True)}
    forced = {prompt_key(originals[0])}
    for seed in range(10):
        train, held_out = split_rows(rows, 0.25, seed, held_out=forced, augmented=augmented)
        train_keys = {prompt_key(r["prompt"]) for r in train}
        held_keys = {prompt_key(r["prompt"]) for r in held_out}
        assert not held_keys & set(augmented)  # never held out
        assert prompt_key(originals[0]) in held_keys
        assert not train_keys & held_keys
        for mine, original in augmented.items():
            # A paraphrase trains exactly when its original does.
            assert (mine in train_keys) == (original in train_keys)
        # The fraction is drawn among the originals only: 12 * 0.25 = 3 held out.
        assert len(held_keys) == 3
    # Without paraphrases the split is split_by_prompt's.
    from rlhf.ml.data import split_by_prompt

    plain = rows[:12]
    assert split_rows(plain, 0.25, 3, held_out=forced) == split_by_prompt(plain, 0.25, 3,
                                                                          held_out=forced)


def test_snapshots_keep_paraphrases_of_held_out_prompts_out_of_training(shop):
    project, train, held_out, existing = shop
    # A paraphrase of the held-out prompt written before it was moved to eval.
    Prompt.objects.filter(pk=held_out.pk).update(split="train")
    leaked = paraphrase(held_out, "Is shipping to Norway possible?")
    Prompt.objects.filter(pk=held_out.pk).update(split="eval")
    more = [paraphrase(p, f"In other words: {p.last_user_message}") for p in train[1:]]
    assert augmented_keys(project) == {
        prompt_key(p.conversation): prompt_key(p.augmented_from.conversation)
        for p in [existing, leaked, *more]
    }
    paraphrases = {prompt_key(p.conversation) for p in [existing, leaked, *more]}
    for seed in range(6):
        snapshot, train_rows, held_rows = build_snapshot(
            project, "prompts", DPORunConfig(eval_fraction=0.5, seed=seed))
        train_keys = {prompt_key(r["prompt"]) for r in train_rows}
        held_keys = {prompt_key(r["prompt"]) for r in held_rows}
        assert prompt_key(held_out.conversation) in held_keys
        assert not held_keys & paraphrases
        assert prompt_key(leaked.conversation) not in train_keys
        for p in [existing, *more]:
            assert (prompt_key(p.conversation) in train_keys) == (
                prompt_key(p.augmented_from.conversation) in train_keys)
        assert snapshot.rows == len(rows_for(*Prompt.objects.filter(project=project)))
        assert snapshot.train_rows + snapshot.eval_rows == snapshot.rows - len(
            paraphrases - train_keys)


def test_a_paraphrase_worded_like_another_prompt_splits_with_that_prompt(shop):
    project, train, _, _ = shop
    twin = paraphrase(train[0], train[1].last_user_message)
    assert prompt_key(twin.conversation) not in augmented_keys(project)


# -- the project page's button ----------------------------------------------------------------


def augment_url(project):
    return reverse("rlhf-augment", args=[project.slug])


def test_engineers_queue_paraphrases_from_the_project_page(
        client, engineer, shop, tiny, django_capture_on_commit_callbacks):
    project, train, _, _ = shop
    project.current_model = tiny
    project.save()
    client.force_login(engineer)
    html = client.get(reverse("annotate-project", args=[project.slug])).content.decode()
    assert augment_url(project) in html
    with django_capture_on_commit_callbacks() as callbacks:
        response = client.post(augment_url(project), {"prompts": "2"})
    assert response.status_code == 302 and len(callbacks) == 1
    # Prompts without paraphrases come first (train[0] already has one).
    assert augment.prompts_for_augmentation(project, 2) == [train[1].pk, train[2].pk]


def test_the_button_needs_a_current_model(client, engineer, shop,
                                          django_capture_on_commit_callbacks):
    project = shop[0]
    client.force_login(engineer)
    with django_capture_on_commit_callbacks() as callbacks:
        response = client.post(augment_url(project), {"prompts": "2"}, follow=True)
    assert callbacks == [] and "no current model" in response.content.decode()


@pytest.mark.parametrize("who", ["annotator", "manager", "outsider"])
def test_other_roles_and_outsiders_cannot_augment(client, shop, tiny, who, request,
                                                  django_capture_on_commit_callbacks):
    project = shop[0]
    project.current_model = tiny
    project.save()
    user = factories.user("olga") if who == "outsider" else request.getfixturevalue(who)
    client.force_login(user)
    with django_capture_on_commit_callbacks() as callbacks:
        assert client.post(augment_url(project), {"prompts": "2"}).status_code == 403
    assert callbacks == []
    assert client.get(augment_url(project)).status_code in (403, 405)


# -- through a real worker --------------------------------------------------------------------


@pytest.mark.integration
def test_a_real_worker_writes_paraphrases(celery_worker, tiny_model_dir):
    from tests.services import wait_for

    project = factories.project()
    originals = [factories.prompt(project, text) for text in SUPPORT]
    version = ModelVersion.objects.create(name="tiny", source=str(tiny_model_dir))
    services.launch_augmentation(project, version, [p.pk for p in originals], 1)
    created = wait_for(
        lambda: list(Prompt.objects.filter(project=project, augmented_from__isnull=False)),
        timeout=120, message="the worker to write paraphrases",
    )
    assert all(p.split == "train" and p.metadata["model_version"] == version.pk
               for p in created)
