"""The model registry: lineage, promote, download as a zip with a model card."""

import io
import zipfile

import pytest
from django.urls import reverse

from rlhf import services
from rlhf.models import DatasetSnapshot, ModelVersion, PolicyEvaluation, TrainingRun
from tests import factories


@pytest.fixture
def lineage(project, tmp_path):
    """base → dpo version (trained by a run on a snapshot) with files on disk."""
    base = ModelVersion.objects.create(name="demo-base", source=str(tmp_path / "base"))
    folder = tmp_path / "run-1"
    folder.mkdir()
    (folder / "config.json").write_text('{"model_type": "llama"}')
    (folder / "model.safetensors").write_bytes(b"\x00\x01" * 5000)
    (folder / "sub").mkdir()
    (folder / "sub" / "extra.txt").write_text("extra")
    snapshot = DatasetSnapshot.objects.create(
        project=project, kind="preference", path="snapshots/x.jsonl", sha256="ab" * 32, rows=10,
        train_rows=8, eval_rows=2, filters={"exclude_flagged": True},
    )
    tuned = ModelVersion.objects.create(
        project=project, name="proj-dpo-run1", source=str(folder), parent=base,
        metrics={"eval_loss": 0.42},
    )
    TrainingRun.objects.create(
        project=project, method="dpo", config={"beta": 0.1, "learning_rate": 0.001},
        base_model=base, status="succeeded", snapshot=snapshot, output_model=tuned,
    )
    return base, tuned


def test_it_shows_lineage_metrics_and_evaluations(client, engineer, lineage):
    base, tuned = lineage
    client.force_login(engineer)
    html = client.get(reverse("rlhf-model-detail", args=[tuned.pk])).content.decode()
    assert "proj-dpo-run1" in html and "demo-base" in html
    assert html.index("proj-dpo-run1") < html.index("demo-base", html.index("Lineage"))
    assert "eval_loss" in html and "0.4200" in html
    assert "Promote to current generator" in html
    assert "Blind human evaluation" in html and "Judged by a reward model" in html
    assert reverse("rlhf-snapshot-download", args=[tuned.run.snapshot.pk]) in html


def test_it_promotes_a_policy_to_the_projects_generator(client, engineer, lineage, project):
    _, tuned = lineage
    client.force_login(engineer)
    response = client.post(reverse("rlhf-model-promote", args=[tuned.pk]), follow=True)
    project.refresh_from_db()
    assert project.current_model == tuned
    html = response.content.decode()
    assert "is now the current model" in html and 'data-testid="current"' in html
    # The generation form now offers the promoted model first.
    page = client.get(reverse("rlhf-generation-new", args=[project.slug])).content.decode()
    assert f'value="{tuned.pk}" selected' in page


def test_it_refuses_to_promote_a_reward_model_or_another_projects_version(engineer, lineage,
                                                                          project):
    other = factories.project("other")
    rm = ModelVersion.objects.create(project=project, name="rm", kind="reward", source="/x")
    foreign = ModelVersion.objects.create(project=other, name="theirs", source="/y")
    with pytest.raises(services.InvalidRun, match="only policies generate"):
        services.promote(project, rm)
    with pytest.raises(services.InvalidRun, match="another project"):
        services.promote(project, foreign)
    project.refresh_from_db()
    assert project.current_model_id is None


def test_it_downloads_the_folder_with_a_model_card(client, manager, lineage):
    _, tuned = lineage
    PolicyEvaluation.objects.create(
        project=tuned.project, policy=tuned, baseline=tuned.parent, judge="reward",
        reward_model=ModelVersion.objects.create(name="rm-1", kind="reward", source="/rm"),
        status="succeeded", results={"n": 20, "win_rate": 0.75, "ci_low": 0.53, "ci_high": 0.89},
    )
    client.force_login(manager)
    response = client.get(reverse("rlhf-model-download", args=[tuned.pk]))
    assert response.status_code == 200 and response["Content-Type"] == "application/zip"
    assert 'filename="proj-dpo-run1.zip"' in response["Content-Disposition"]
    archive = zipfile.ZipFile(io.BytesIO(b"".join(response.streaming_content)))
    assert sorted(archive.namelist()) == [
        "README.md", "config.json", "model.safetensors", "sub/extra.txt"
    ]
    assert archive.read("model.safetensors") == b"\x00\x01" * 5000
    card = archive.read("README.md").decode()
    assert card.startswith("---\n") and "library_name: transformers" in card
    assert "- dpo" in card and "base_model: " in card
    assert "| beta | 0.1 |" in card and "| learning_rate | 0.001 |" in card
    assert "ab" * 32 in card and "8 train, 2 held out" in card and "exclude_flagged=True" in card
    assert "| eval_loss | 0.42 |" in card
    assert "| 20 | 0.750 | 0.530–0.890 |" in card


def test_it_says_when_a_version_has_no_local_folder(client, manager, lineage):
    base, _ = lineage  # its source folder does not exist
    client.force_login(manager)
    response = client.get(reverse("rlhf-model-download", args=[base.pk]), follow=True)
    assert "is not a folder on this server" in response.content.decode()


@pytest.mark.parametrize("name", ["rlhf-model-detail", "rlhf-model-download"])
def test_annotators_and_outsiders_cannot_see_models(client, annotator, lineage, name):
    _, tuned = lineage
    client.force_login(annotator)
    assert client.get(reverse(name, args=[tuned.pk])).status_code == 403
    client.logout()
    response = client.get(reverse(name, args=[tuned.pk]))
    assert response.status_code == 302 and "/accounts/login/" in response["Location"]


def test_only_engineers_promote(client, manager, lineage, project):
    _, tuned = lineage
    client.force_login(manager)
    assert client.post(reverse("rlhf-model-promote", args=[tuned.pk])).status_code == 403
    project.refresh_from_db()
    assert project.current_model_id is None
