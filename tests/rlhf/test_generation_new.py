"""Asking for generated candidates: a QUEUED job for the right prompts, enqueued after commit."""

import pytest
from django.urls import reverse

from annotate.models import Candidate
from rlhf.models import GenerationJob, ModelVersion
from tests import factories


@pytest.fixture
def base(db):
    return ModelVersion.objects.create(name="base", source="/models/base")


def test_it_queues_a_job_for_prompts_with_fewest_model_answers(
    client, engineer, project, base, django_capture_on_commit_callbacks, monkeypatch
):
    sent = []
    monkeypatch.setattr("rlhf.tasks.generate.apply_async", lambda args, **kw: sent.append(args))
    first = project.prompts.order_by("id").first()
    Candidate.objects.create(prompt=first, text="x", origin="model", model_version=base)
    client.force_login(engineer)
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            reverse("rlhf-generation-new", args=[project.slug]),
            {"model_version": base.pk, "num_candidates": 3, "max_prompts": 5,
             "max_new_tokens": 32, "temperature": 0.8},
        )
    job = GenerationJob.objects.get()
    assert response.status_code == 302 and response["Location"] == job.get_absolute_url()
    assert job.total == 5 and first.pk not in job.prompt_ids
    assert job.config["num_candidates"] == 3 and job.config["max_new_tokens"] == 32
    assert sent == [[job.pk]]


def test_it_refuses_a_project_without_prompts(client, engineer, base):
    empty = factories.project("empty")
    client.force_login(engineer)
    response = client.post(
        reverse("rlhf-generation-new", args=[empty.slug]),
        {"model_version": base.pk, "num_candidates": 2, "max_prompts": 5,
         "max_new_tokens": 32, "temperature": 0.8},
    )
    assert response.status_code == 200
    assert b"no training prompts" in response.content
    assert not GenerationJob.objects.exists()


def test_it_shows_progress_as_a_polled_fragment(client, manager, project, base):
    job = GenerationJob.objects.create(project=project, model_version=base, total=8, done=2,
                                       status="running")
    client.force_login(manager)
    page = client.get(job.get_absolute_url()).content.decode()
    fragment = client.get(job.get_absolute_url(), HTTP_HX_REQUEST="true").content.decode()
    assert 'hx-trigger="every 2s"' in page
    assert 'aria-valuenow="25"' in fragment and "<html" not in fragment
