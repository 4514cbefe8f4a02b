"""Property-based tests of the served OpenAPI schema: no generated request makes a 5xx.

schemathesis loads /api/openapi.json from the WSGI app and generates requests for every
operation; they are sent with a real engineer token to a demo-like project, run, and model
versions (path parameters point at them, so the handlers run rather than answering 404).
"""

from types import SimpleNamespace

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error

from annotate.importing import import_file
from annotate.tokens import create_token
from rlhf.models import ModelVersion, RunMetric, TrainingRun
from tests import factories

# The prompt import takes JSONL and CSV bodies as text.
schemathesis.serializer.alias(["text/csv", "application/x-ndjson"], "text/plain")

DEMO_ROWS = b"".join(
    b'{"id": "d%d", "prompt": "Order %d is late, why?", "candidates": ["Sorry!", "It ships."]}\n'
    % (i, i) for i in range(4)
)


@pytest.fixture
def world(transactional_db, tmp_path, monkeypatch, settings):
    """A demo-ish project with items, a judgement-free queue, models, a run and an engineer."""
    settings.MEDIA_ROOT = tmp_path / "media"
    # The test sends nothing to a broker: enqueueing is recorded, never attempted.
    for task in ("train", "generate", "score_open_items", "evaluate", "loop_iteration",
                 "augment", "deliver_webhook"):
        monkeypatch.setattr(f"rlhf.tasks.{task}.apply_async", lambda *a, **kw: None)
    engineer = factories.user("erin", "Engineer")
    project = factories.project("demo", name="Demo support")
    import_file(project, "demo.jsonl", DEMO_ROWS)
    base = ModelVersion.objects.create(name="demo-base", source=str(tmp_path / "missing"))
    folder = tmp_path / "tuned"
    folder.mkdir()
    (folder / "config.json").write_text("{}")
    tuned = ModelVersion.objects.create(project=project, name="demo-dpo", source=str(folder),
                                        parent=base)
    project.current_model = base
    project.save()
    run = TrainingRun.objects.create(project=project, method="dpo", base_model=base,
                                     status="running", output_model=None)
    RunMetric.objects.create(run=run, step=1, name="loss", value=0.7)
    _, raw = create_token(engineer, "schemathesis")
    return SimpleNamespace(slug=project.slug, run_id=run.pk, model_id=tuned.pk,
                           headers={"Authorization": f"Bearer {raw}"})


def operations():
    """(method, path) of every operation the API serves."""
    from config.api import api

    paths = api.get_openapi_schema()["paths"]
    return [(method.upper(), path) for path, ops in paths.items() for method in ops]


@pytest.fixture
def api_schema(world):
    from django.core.wsgi import get_wsgi_application

    return schemathesis.openapi.from_wsgi("/api/openapi.json", get_wsgi_application())


# schemathesis' own pytest plugin (from_fixture/parametrize) does not run on pytest 9.2, so each
# operation is a plain parametrized test drawing cases from the operation's strategy.
@pytest.mark.parametrize(("method", "path"), operations())
def test_it_never_answers_with_a_server_error(api_schema, world, method, path):
    operation = api_schema[path][method]
    targets = {"slug": world.slug, "run_id": world.run_id, "model_id": world.model_id}
    fixed = {p.name: targets[p.name] for p in operation.path_parameters if p.name in targets}
    cases = st.one_of(
        operation.as_strategy(GenerationMode.POSITIVE, path_parameters=fixed),
        operation.as_strategy(GenerationMode.NEGATIVE, path_parameters=fixed),
    )

    @given(case=cases)
    @settings(max_examples=25, deadline=None, derandomize=True, database=None,
              suppress_health_check=list(HealthCheck))
    def check(case):
        case.call_and_validate(headers=world.headers, checks=[not_a_server_error])

    check()


def test_the_served_schema_is_strict_json_without_duplicate_keys(client):
    """Swagger UI refuses a document with a key twice (it showed nothing but a parser error
    when an operation's 200 response was listed both as 200 and "200")."""
    import json

    def unique(pairs):
        keys = [k for k, _ in pairs]
        assert len(keys) == len(set(keys)), f"duplicate keys: {keys}"
        return dict(pairs)

    response = client.get("/api/openapi.json")
    assert response.status_code == 200
    schema = json.loads(response.content, object_pairs_hook=unique)
    assert schema["openapi"].startswith("3.")
    download = schema["paths"]["/api/models/{model_id}/download"]["get"]["responses"]["200"]
    assert "application/zip" in download["content"]

