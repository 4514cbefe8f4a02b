"""The demo project loads with its gold items and quality settings."""

import io
import json
from pathlib import Path

import pytest
from django.core.management import call_command

from annotate.models import Item, Project

pytestmark = pytest.mark.django_db

DEMO = Path(__file__).resolve().parents[2] / "demo"


def test_it_loads_the_demo_project_with_gold_items_and_review():
    out = io.StringIO()
    call_command("setup_demo", skip_model=True, stdout=out)
    assert "loaded demo project" in out.getvalue()
    meta = json.loads((DEMO / "project.json").read_text())
    project = Project.objects.get(slug=meta["slug"])
    rows = [json.loads(line) for line in (DEMO / "support_prompts.jsonl").open()]
    gold_rows = [r for r in rows if "gold" in r]
    assert gold_rows and project.gold_rate == meta["gold_rate"]
    assert project.review_threshold == meta["review_threshold"]
    gold = Item.objects.filter(project=project, is_gold=True).select_related("prompt")
    assert gold.count() == len(gold_rows)
    for item in gold:
        row = next(r for r in gold_rows if r["id"] == item.prompt.external_id)
        best = item.prompt.candidates.get(pk=item.gold_ranking[0][0]).text
        assert row["metadata"]["qualities"][row["candidates"].index(best)] == "helpful"
