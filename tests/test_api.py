"""The REST API, human side: token auth, docs, projects, prompt import, items, judgements,
export and ingestion; every endpoint as the right role, a wrong role, an outsider, no token
and a revoked token."""

import json
import uuid
from datetime import timedelta

import pytest
from django.utils import timezone

from annotate import queue
from annotate.models import ApiToken, Prompt
from annotate.services import submit_judgement
from annotate.tokens import create_token, verify_token
from tests import factories
from tests.api_support import bearer, body, detail, revoked_bearer


@pytest.fixture
def outsider(db):
    """An annotator who is not assigned to `closed`."""
    return factories.user("olga", "Annotator")


@pytest.fixture
def nobody(db):
    """A user with no role at all."""
    return factories.user("nora")


@pytest.fixture
def closed(annotator):
    """A project only `annotator` is assigned to."""
    proj = factories.project_with_items(n_prompts=3, n_candidates=2, slug="closed")
    proj.annotators.add(annotator)
    return proj


def judge_all(project, user):
    while (a := queue.claim_next(project, user)) is not None:
        submit_judgement(user, a.pk, ";".join(map(str, a.shown_order)), uuid.uuid4())


# --- tokens and auth --------------------------------------------------------------------

def test_it_refuses_requests_without_a_token(client, project):
    response = client.get("/api/projects")
    assert response.status_code == 401
    assert "Bearer" in detail(response) and response["WWW-Authenticate"].startswith("Bearer")
    assert client.get("/api/projects", HTTP_AUTHORIZATION="Bearer pfl_nope").status_code == 401
    assert client.get("/api/projects", HTTP_AUTHORIZATION="Basic Zm9vOmJhcg==").status_code == 401


def test_it_stops_a_revoked_token_at_once(client, engineer, project):
    token, raw = create_token(engineer, "ci")
    headers = {"HTTP_AUTHORIZATION": f"Bearer {raw}"}
    assert client.get("/api/projects", **headers).status_code == 200
    client.force_login(engineer)
    client.post(f"/accounts/tokens/{token.pk}/revoke/")
    client.logout()
    assert client.get("/api/projects", **headers).status_code == 401


def test_it_refuses_the_token_of_a_deactivated_user(client, engineer, project):
    headers = bearer(engineer)
    engineer.is_active = False
    engineer.save()
    assert client.get("/api/projects", **headers).status_code == 401


def test_it_notes_when_a_token_was_used_at_most_once_a_minute(engineer):
    token, raw = create_token(engineer, "ci")
    assert token.last_used_at is None
    first = timezone.now()
    verify_token(raw, now=first)
    token.refresh_from_db()
    assert token.last_used_at == first
    verify_token(raw, now=first + timedelta(seconds=30))
    token.refresh_from_db()
    assert token.last_used_at == first
    later = first + timedelta(minutes=2)
    verify_token(raw, now=later)
    token.refresh_from_db()
    assert token.last_used_at == later


def test_it_sets_last_used_through_the_api(client, engineer, project):
    headers = bearer(engineer)
    client.get("/api/projects", **headers)
    assert ApiToken.objects.get(user=engineer).last_used_at is not None


def test_it_serves_the_schema_and_docs_from_local_static_files(client):
    schema = client.get("/api/openapi.json").json()
    assert schema["info"]["title"] == "preflab" and schema["info"]["version"] == "1"
    assert "/api/projects/{slug}/conversations" in schema["paths"]
    assert any(s.get("scheme") == "bearer"
               for s in schema["components"]["securitySchemes"].values())
    html = client.get("/api/docs").content.decode()
    assert "/static/ninja/swagger-ui-bundle.js" in html
    for cdn in ("cdn.", "unpkg", "jsdelivr", "https://"):
        assert cdn not in html


# --- projects ---------------------------------------------------------------------------

def test_it_lists_every_project_for_engineers_and_managers(client, engineer, manager, project,
                                                           closed):
    for user in (engineer, manager):
        data = client.get("/api/projects", **bearer(user)).json()
        assert data["count"] == 2
        assert {p["slug"] for p in data["items"]} == {project.slug, "closed"}


def test_it_lists_only_the_projects_that_admit_an_annotator(client, annotator, outsider,
                                                            project, closed):
    mine = client.get("/api/projects", **bearer(annotator)).json()
    assert {p["slug"] for p in mine["items"]} == {project.slug, "closed"}
    theirs = client.get("/api/projects", **bearer(outsider)).json()
    assert {p["slug"] for p in theirs["items"]} == {project.slug}


def test_it_refuses_projects_to_users_without_a_role(client, nobody, project):
    response = client.get("/api/projects", **bearer(nobody))
    assert response.status_code == 403 and "role" in detail(response)
    assert client.get(f"/api/projects/{project.slug}", **bearer(nobody)).status_code == 403


def test_it_paginates_lists_with_a_maximum_page_size(client, engineer):
    for i in range(5):
        factories.project(f"p-{i}")
    headers = bearer(engineer)
    page = client.get("/api/projects?page=2&page_size=2", **headers).json()
    assert page["count"] == 5 and [p["slug"] for p in page["items"]] == ["p-2", "p-3"]
    assert client.get("/api/projects?page=9&page_size=2", **headers).json()["items"] == []
    response = client.get("/api/projects?page_size=1000", **headers)
    assert response.status_code == 400 and "page_size" in detail(response)
    assert client.get("/api/projects?page=0", **headers).status_code == 400


def test_it_shows_a_project_with_counts_to_engineers(client, engineer, project):
    data = client.get(f"/api/projects/{project.slug}", **bearer(engineer)).json()
    assert data["slug"] == project.slug and data["stats"]["items"] == 6
    assert data["stats"]["prompts"] == 6


def test_it_shows_annotators_the_basics_of_their_projects(client, annotator, closed):
    data = client.get("/api/projects/closed", **bearer(annotator)).json()
    assert data["name"] == closed.name and data["stats"] is None


def test_it_hides_a_project_from_an_outsider(client, outsider, closed):
    response = client.get("/api/projects/closed", **bearer(outsider))
    assert response.status_code == 404 and "closed" in detail(response)


def test_it_answers_404_for_an_unknown_project(client, engineer):
    assert client.get("/api/projects/nope", **bearer(engineer)).status_code == 404


def test_it_refuses_projects_to_a_revoked_token(client, engineer, project):
    headers = revoked_bearer(engineer)
    assert client.get("/api/projects", **headers).status_code == 401
    assert client.get(f"/api/projects/{project.slug}", **headers).status_code == 401


# --- prompt import ----------------------------------------------------------------------

JSONL = (
    '{"id": "a1", "prompt": "Where is my parcel?", "candidates": ["In transit.", "Lost."]}\n'
    '{"id": "a2", "prompt": [{"role": "user", "content": "Refund?"}]}\n'
)


def post_prompts(client, project, data, content_type, headers):
    return client.post(f"/api/projects/{project.slug}/prompts", data=data,
                       content_type=content_type, **headers)


def test_it_imports_jsonl_like_the_ui(client, engineer, project):
    response = post_prompts(client, project, JSONL, "application/x-ndjson", bearer(engineer))
    assert response.status_code == 201
    assert response.json() == {"prompts": 2, "candidates": 2, "items": 1, "gold": 0}
    prompt = Prompt.objects.get(project=project, external_id="a1")
    assert prompt.source == "api" and prompt.conversation[0]["content"] == "Where is my parcel?"


def test_it_imports_csv_and_a_json_list(client, engineer, project):
    headers = bearer(engineer)
    csv_body = "id,prompt,candidate_1,candidate_2\nc1,Hello?,Hi.,Hey.\n"
    response = post_prompts(client, project, csv_body, "text/csv", headers)
    assert response.status_code == 201 and response.json()["items"] == 1
    rows = [{"id": "j1", "prompt": "One?"}, {"id": "j2", "prompt": "Two?", "split": "eval"}]
    response = post_prompts(client, project, json.dumps(rows), "application/json", headers)
    assert response.status_code == 201 and response.json()["prompts"] == 2
    assert Prompt.objects.get(project=project, external_id="j2").split == "eval"


def test_it_imports_nothing_and_lists_every_bad_line(client, engineer, project):
    before = Prompt.objects.count()
    body_ = (
        '{"id": "ok", "prompt": "Fine"}\n'
        '{"prompt": ""}\n'
        'not json\n'
        '{"prompt": "x", "colour": "red"}\n'
    )
    response = post_prompts(client, project, body_, "application/x-ndjson", bearer(engineer))
    assert response.status_code == 400
    data = response.json()
    assert "Nothing was imported" in data["detail"]
    assert [e.split(":")[0] for e in data["errors"]] == ["line 2", "line 3", "line 4"]
    assert "invalid JSON" in data["errors"][1] and "colour" in data["errors"][2]
    assert Prompt.objects.count() == before


def test_it_numbers_json_list_errors_by_row(client, engineer, project):
    rows = [{"prompt": "ok"}, {"prompt": [{"role": "bot", "content": "x"}]}]
    response = post_prompts(client, project, json.dumps(rows), "application/json",
                            bearer(engineer))
    assert response.status_code == 400
    assert response.json()["errors"][0].startswith("line 2: 'prompt' turn 1 has role 'bot'")


def test_it_refuses_ids_that_already_exist(client, engineer, project):
    response = post_prompts(client, project, '{"id": "q0", "prompt": "Again"}\n',
                            "application/x-ndjson", bearer(engineer))
    assert response.status_code == 400 and "already exists" in response.json()["errors"][0]


def test_it_says_what_is_wrong_with_the_body(client, engineer, project):
    headers = bearer(engineer)
    response = post_prompts(client, project, "{oops", "application/json", headers)
    assert response.status_code == 400 and "not valid JSON" in detail(response)
    response = post_prompts(client, project, '{"prompt": "x"}', "application/json", headers)
    assert response.status_code == 400 and "array" in detail(response)
    response = post_prompts(client, project, "x", "image/png", headers)
    assert response.status_code == 415
    response = post_prompts(client, project, "", "application/x-ndjson", headers)
    assert response.status_code == 400 and "no rows" in response.json()["errors"][0]
    response = post_prompts(client, project, b"\xff\xfe", "application/x-ndjson", headers)
    assert response.status_code == 400 and "UTF-8" in response.json()["errors"][0]


def test_it_lets_only_engineers_import(client, manager, annotator, outsider, closed):
    before = Prompt.objects.count()
    for user, status in ((manager, 403), (annotator, 403), (outsider, 404)):
        response = post_prompts(client, closed, JSONL, "application/x-ndjson", bearer(user))
        assert response.status_code == status
    response = post_prompts(client, closed, JSONL, "application/x-ndjson",
                            revoked_bearer(manager))
    assert response.status_code == 401
    assert post_prompts(client, closed, JSONL, "application/x-ndjson", {}).status_code == 401
    assert Prompt.objects.count() == before


# --- items ------------------------------------------------------------------------------

def test_it_lists_items_with_prompt_and_candidates(client, engineer, manager, project):
    for user in (engineer, manager):
        data = client.get(f"/api/projects/{project.slug}/items?page_size=4",
                          **bearer(user)).json()
        assert data["count"] == 6 and len(data["items"]) == 4
        item = data["items"][0]
        assert item["prompt"]["external_id"] == "q0"
        assert [c["text"] for c in item["candidates"]] == [
            f"Answer {j} to question 0." for j in range(3)
        ]
    page2 = client.get(f"/api/projects/{project.slug}/items?page_size=4&page=2",
                       **bearer(engineer)).json()
    assert [i["prompt"]["external_id"] for i in page2["items"]] == ["q4", "q5"]


def test_it_filters_open_items(client, engineer, annotator, project):
    judge_all(project, annotator)
    data = client.get(f"/api/projects/{project.slug}/items?open_only=true",
                      **bearer(engineer)).json()
    assert data["count"] == 0


def test_it_refuses_items_to_annotators_and_outsiders(client, annotator, outsider, closed):
    assert client.get("/api/projects/closed/items", **bearer(annotator)).status_code == 403
    assert client.get("/api/projects/closed/items", **bearer(outsider)).status_code == 404
    assert client.get("/api/projects/closed/items", **revoked_bearer(annotator)
                      ).status_code == 401


# --- judgements -------------------------------------------------------------------------

def test_it_lists_every_judgement_for_engineers_and_managers(client, engineer, manager,
                                                             annotator, project):
    judge_all(project, annotator)
    for user in (engineer, manager):
        data = client.get(f"/api/projects/{project.slug}/judgements", **bearer(user)).json()
        assert data["count"] == 6
        first = data["items"][0]
        assert first["annotator"] == "alice" and len(first["ranking"]) == 3


def test_it_shows_annotators_only_their_own_judgements(client, annotator, project):
    judge_all(project, annotator)
    other = factories.user("bob", "Annotator")
    project.items.update(open_slots=1)
    judge_all(project, other)
    data = client.get(f"/api/projects/{project.slug}/judgements", **bearer(other)).json()
    assert data["count"] == 6 and {j["annotator"] for j in data["items"]} == {"bob"}


def test_it_hides_judgements_from_outsiders(client, outsider, nobody, closed):
    assert client.get("/api/projects/closed/judgements", **bearer(outsider)).status_code == 404
    assert client.get("/api/projects/closed/judgements", **bearer(nobody)).status_code == 403
    assert client.get("/api/projects/closed/judgements", **revoked_bearer(outsider)
                      ).status_code == 401


# --- export -----------------------------------------------------------------------------

def test_it_exports_preference_rows(client, engineer, manager, annotator, project):
    judge_all(project, annotator)
    for user in (engineer, manager):
        response = client.get(f"/api/projects/{project.slug}/export?format=jsonl",
                              **bearer(user))
        assert response.status_code == 200
        assert response["Content-Disposition"].endswith('preferences.jsonl"')
        rows = [json.loads(line) for line in body(response).decode().splitlines()]
        assert len(rows) == 18
        assert rows[0]["chosen"][0]["role"] == "assistant" and "prompt" in rows[0]


def test_it_exports_the_formats_of_annotate_exporting(client, engineer, annotator, project):
    import io

    import pyarrow.parquet as pq

    judge_all(project, annotator)
    headers = bearer(engineer)
    response = client.get(f"/api/projects/{project.slug}/export?format=csv", **headers)
    assert response.status_code == 200 and response["Content-Type"].startswith("text/csv")
    lines = body(response).decode().splitlines()
    assert lines[0].startswith("prompt,chosen,rejected") and len(lines) == 19
    response = client.get(f"/api/projects/{project.slug}/export?format=parquet", **headers)
    assert response["Content-Disposition"].endswith('preferences.parquet"')
    assert pq.read_table(io.BytesIO(body(response))).num_rows == 18


def test_it_refuses_unknown_export_formats(client, engineer, project):
    response = client.get(f"/api/projects/{project.slug}/export?format=xlsx", **bearer(engineer))
    assert response.status_code == 400 and "jsonl" in detail(response)


def test_it_refuses_exports_to_annotators_and_outsiders(client, annotator, outsider, closed):
    assert client.get("/api/projects/closed/export", **bearer(annotator)).status_code == 403
    assert client.get("/api/projects/closed/export", **bearer(outsider)).status_code == 404
    assert client.get("/api/projects/closed/export", **revoked_bearer(annotator)
                      ).status_code == 401


# --- ingestion --------------------------------------------------------------------------

def conversation(external_id="c-1", **fields):
    return {
        "external_id": external_id,
        "messages": [{"role": "user", "content": "My email is jo@example.com, where is it?"}],
        "reply": "It ships tomorrow, Jo.",
        "feedback": {"thumb": "down", "correction": "It shipped today.", "comment": None},
        "customer": {"name": "Jo Bloggs", "email": "jo@example.com"},
        **fields,
    }


def post_conversations(client, project, payload, headers):
    return client.post(f"/api/projects/{project.slug}/conversations", data=payload,
                       content_type="application/json", **headers)


def test_it_ingests_conversations_and_reports_duplicates(client, engineer, project):
    from annotate.models import Conversation

    headers = bearer(engineer)
    payload = {"conversations": [conversation("c-1"), conversation("c-2")]}
    response = post_conversations(client, project, payload, headers)
    assert response.status_code == 201, response.content
    data = response.json()
    assert data["created"] == 2 and data["duplicates"] == 0 and len(data["ids"]) == 2
    stored = Conversation.objects.get(project=project, external_id="c-1")
    assert "jo@example.com" not in json.dumps(stored.messages)
    again = post_conversations(client, project, payload, headers)
    assert again.status_code == 200 and again.json()["duplicates"] == 2


@pytest.mark.parametrize(
    ("change", "where"),
    [({"messages": []}, "messages"),
     ({"messages": [{"role": "assistant", "content": "Hi"}]}, "last message"),
     ({"messages": [{"role": "robot", "content": "Hi"}]}, "role"),
     ({"reply": ""}, "reply"),
     ({"reply": "   "}, "reply is empty"),
     ({"external_id": ""}, "external_id"),
     ({"external_id": "x" * 201}, "external_id"),
     ({"feedback": {"thumb": "sideways"}}, "thumb"),
     ({"customer": {"name": 3}}, "customer")],
)
def test_it_refuses_malformed_conversations(client, engineer, project, change, where):
    response = post_conversations(client, project, {"conversations": [conversation(**change)]},
                                  bearer(engineer))
    assert response.status_code == 400
    assert where in detail(response)


def test_it_answers_400_when_ingest_refuses_a_row(client, engineer, project):
    from annotate.models import Conversation

    payload = {"conversations": [conversation("ok"), conversation("long", model_version="v" * 301)]}
    response = post_conversations(client, project, payload, bearer(engineer))
    assert response.status_code == 400
    assert "conversation 1" in detail(response) and "Nothing was stored" in detail(response)
    assert not Conversation.objects.exists()


def test_it_refuses_empty_and_oversized_batches(client, engineer, project):
    headers = bearer(engineer)
    assert post_conversations(client, project, {"conversations": []}, headers
                              ).status_code == 400
    many = {"conversations": [conversation(f"c-{i}") for i in range(501)]}
    assert post_conversations(client, project, many, headers).status_code == 400
    assert post_conversations(client, project, "not json", headers).status_code == 400


def test_it_lets_only_engineers_ingest(client, manager, annotator, outsider, closed):
    payload = {"conversations": [conversation()]}
    assert post_conversations(client, closed, payload, bearer(manager)).status_code == 403
    assert post_conversations(client, closed, payload, bearer(annotator)).status_code == 403
    assert post_conversations(client, closed, payload, bearer(outsider)).status_code == 404
    assert post_conversations(client, closed, payload, revoked_bearer(manager)
                              ).status_code == 401
    assert post_conversations(client, closed, payload, {}).status_code == 401
