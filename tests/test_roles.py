"""Every page as the right role, a wrong role and an anonymous user."""

import pytest
from django.urls import reverse

from annotate.importing import create_item
from annotate.models import Candidate
from rlhf.models import GenerationJob, ModelVersion, TrainingRun
from tests import factories


@pytest.fixture
def objects(project, engineer):
    base = ModelVersion.objects.create(name="base", source="/nowhere")
    run = TrainingRun.objects.create(project=project, base_model=base, config={})
    job = GenerationJob.objects.create(project=project, model_version=base)
    prompt = factories.prompt(project)
    item = create_item(project, prompt, [
        Candidate.objects.create(prompt=prompt, text=t) for t in ("One.", "Two.")
    ])
    return {"slug": project.slug, "run": run.pk, "job": job.pk, "item_id": item.pk}


# (url name, kwargs keys, roles allowed)
PAGES = [
    ("annotate-work", ["slug"], {"annotator"}),
    ("annotate-prefetch", ["slug"], {"annotator"}),
    ("annotate-project", ["slug"], {"engineer", "manager"}),
    ("annotate-export", ["slug"], {"engineer", "manager"}),
    ("annotate-project-new", [], {"engineer"}),
    ("dashboard-project", ["slug"], {"manager", "engineer"}),
    ("rlhf-runs", [], {"engineer", "manager"}),
    ("rlhf-run-new", ["slug"], {"engineer"}),
    ("rlhf-generation-new", ["slug"], {"engineer"}),
    ("rlhf-run-detail", ["run"], {"engineer", "manager"}),
    ("rlhf-run-metrics", ["run"], {"engineer", "manager"}),
    ("rlhf-generation-detail", ["job"], {"engineer", "manager"}),
    ("annotate-review", ["slug"], {"reviewer", "manager"}),
    ("annotate-review-item", ["slug", "item_id"], {"reviewer", "manager"}),
    ("annotate-quality", ["slug"], {"manager"}),
    ("rlhf-loop", ["slug"], {"engineer", "manager"}),
    ("rlhf-webhooks", ["slug"], {"engineer"}),
    ("annotate-conversations", ["slug"], {"engineer", "manager"}),
    ("annotate-tokens", [], {"annotator", "engineer", "manager", "reviewer"}),
]
ROLE_OF = {"annotator": "Annotator", "engineer": "Engineer", "manager": "Manager",
           "reviewer": "Reviewer"}


def _url(name, keys, objects):
    kwargs = {("pk" if k in ("run", "job") else k): objects[k] for k in keys}
    query = "?current=0" if name == "annotate-prefetch" else ""
    return reverse(name, kwargs=kwargs) + query


@pytest.mark.parametrize(("name", "keys", "allowed"), PAGES, ids=[p[0] for p in PAGES])
@pytest.mark.parametrize("role", list(ROLE_OF))
def test_it_lets_only_the_right_roles_in(client, objects, name, keys, allowed, role):
    client.force_login(factories.user(f"u-{role}", ROLE_OF[role]))
    response = client.get(_url(name, keys, objects))
    if role in allowed:
        assert response.status_code == 200, response.content[:500]
    else:
        assert response.status_code == 403


@pytest.mark.parametrize(("name", "keys", "allowed"), PAGES, ids=[p[0] for p in PAGES])
def test_it_sends_anonymous_users_to_login(client, objects, name, keys, allowed):
    url = _url(name, keys, objects)
    response = client.get(url)
    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/?next=")


def test_it_lets_a_superuser_open_every_page(client, objects, django_user_model):
    client.force_login(django_user_model.objects.create_superuser("root", password="x"))
    for name, keys, _ in PAGES:
        assert client.get(_url(name, keys, objects)).status_code == 200, name


@pytest.mark.parametrize(
    ("name", "method_role"),
    [("annotate-submit", "annotator"), ("annotate-undo", "annotator"),
     ("annotate-skip", "annotator"), ("annotate-import", "engineer"),
     ("rlhf-run-cancel", "engineer"), ("annotate-review-item", "reviewer")],
)
def test_it_forbids_posts_from_wrong_roles(client, objects, name, method_role):
    kwargs = {"pk": objects["run"]} if name == "rlhf-run-cancel" else {"slug": objects["slug"]}
    if name == "annotate-review-item":
        kwargs["item_id"] = objects["item_id"]
    for role in ROLE_OF:
        if role == method_role:
            continue
        client.force_login(factories.user(f"p-{role}-{name}", ROLE_OF[role]))
        assert client.post(reverse(name, kwargs=kwargs)).status_code == 403


def test_the_home_page_needs_login(client):
    assert client.get("/").status_code == 302
