"""The project page's re-score button (active learning) for engineers."""

import pytest
from django.urls import reverse

from rlhf.models import ModelVersion
from tests import factories

pytestmark = pytest.mark.django_db


def test_it_enqueues_scoring_with_the_projects_reward_model(
    client, monkeypatch, django_capture_on_commit_callbacks
):
    project = factories.project_with_items(n_prompts=2, ordering="active_learning")
    version = ModelVersion.objects.create(project=project, name="rm-1", source="/rm",
                                          kind=ModelVersion.Kind.REWARD)
    project.reward_model = version
    project.save(update_fields=["reward_model"])
    sent = []
    monkeypatch.setattr("rlhf.tasks.score_open_items.apply_async",
                        lambda args, **kw: sent.append(args))
    client.force_login(factories.user("eng", "Engineer"))
    page = client.get(reverse("annotate-project", args=[project.slug])).content.decode()
    assert "Re-score open items" in page and "rm-1" in page
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(reverse("rlhf-rescore", args=[project.slug]), follow=True)
    assert sent == [[project.pk, version.pk]]
    assert "Scoring open items with rm-1" in response.content.decode()


def test_it_says_there_is_no_reward_model_yet(client):
    project = factories.project_with_items(n_prompts=1)
    client.force_login(factories.user("eng", "Engineer"))
    response = client.post(reverse("rlhf-rescore", args=[project.slug]), follow=True)
    assert "no reward model yet" in response.content.decode()


@pytest.mark.parametrize("role", ["Annotator", "Manager", "Reviewer"])
def test_only_engineers_rescore(client, role):
    project = factories.project_with_items(n_prompts=1)
    client.force_login(factories.user(f"x-{role}", role))
    assert client.post(reverse("rlhf-rescore", args=[project.slug])).status_code == 403
