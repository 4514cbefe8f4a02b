"""export_preferences and the download: TRL conversational rows that DPOTrainer takes as is."""

import json
import uuid

import pytest
from django.core.management import call_command
from django.urls import reverse

from annotate import queue
from annotate.services import submit_judgement
from tests import factories


def judge_all(project, user):
    while (a := queue.claim_next(project, user)) is not None:
        submit_judgement(user, a.pk, ";".join(map(str, a.shown_order)), uuid.uuid4())


@pytest.fixture
def judged(project, annotator):
    judge_all(project, annotator)
    return project


def test_it_writes_one_row_per_ordered_pair(judged, tmp_path):
    out = tmp_path / "prefs.jsonl"
    call_command("export_preferences", judged.slug, "--out", str(out))
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    # 6 items x 3 candidates ranked without ties = 3 pairs each.
    assert len(rows) == 18
    row = rows[0]
    assert row["prompt"][-1]["role"] == "user"
    assert row["chosen"][0]["role"] == row["rejected"][0]["role"] == "assistant"
    assert row["chosen"] != row["rejected"]
    assert len({r["id"] for r in rows}) == 18


def test_it_downloads_the_same_rows(client, judged, engineer, tmp_path):
    out = tmp_path / "prefs.jsonl"
    call_command("export_preferences", judged.slug, "--out", str(out))
    client.force_login(engineer)
    response = client.get(reverse("annotate-export", args=[judged.slug]))
    assert response["Content-Disposition"].endswith('preferences.jsonl"')
    assert b"".join(response.streaming_content).decode() == out.read_text()


def test_it_exports_nothing_for_an_unjudged_project(db, tmp_path):
    proj = factories.project_with_items(n_prompts=2)
    out = tmp_path / "p.jsonl"
    call_command("export_preferences", proj.slug, "--out", str(out))
    assert out.read_text() == ""


def test_datasets_loads_it_and_dpo_trainer_trains_on_it(judged, tmp_path, tiny_model_dir):
    from datasets import load_dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import DPOConfig, DPOTrainer

    out = tmp_path / "prefs.jsonl"
    call_command("export_preferences", judged.slug, "--out", str(out))
    dataset = load_dataset("json", data_files=str(out), split="train")
    assert {"prompt", "chosen", "rejected"} <= set(dataset.column_names)
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    trainer = DPOTrainer(
        model=model,
        ref_model=AutoModelForCausalLM.from_pretrained(tiny_model_dir),
        args=DPOConfig(output_dir=str(tmp_path / "out"), max_steps=2,
                       per_device_train_batch_size=4, bf16=False, use_cpu=True,
                       report_to="none", save_strategy="no", max_length=128),
        train_dataset=dataset,
        processing_class=AutoTokenizer.from_pretrained(tiny_model_dir),
    )
    result = trainer.train()
    assert result.global_step == 2
