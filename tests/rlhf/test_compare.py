"""Comparing runs: several runs' curves of one metric on one chart."""

import pytest
from django.urls import reverse

from rlhf.models import ModelVersion, TrainingRun


@pytest.fixture
def runs(project):
    base = ModelVersion.objects.create(name="base", source="/b")
    a = TrainingRun.objects.create(project=project, base_model=base, method="dpo",
                                   status="succeeded", eval_metrics={"eval_loss": 0.5})
    b = TrainingRun.objects.create(project=project, base_model=base, method="reward")
    a.metrics.create(step=1, name="loss", value=0.7)
    b.metrics.create(step=1, name="accuracy", value=0.6)
    b.metrics.create(step=1, name="loss", value=0.9)
    return a, b


def test_it_charts_the_chosen_runs_and_lists_their_metrics(client, manager, runs):
    a, b = runs
    client.force_login(manager)
    html = client.get(reverse("rlhf-compare"), {"runs": [a.pk, b.pk], "metric": "accuracy"}
                      ).content.decode()
    assert 'id="compare-chart"' in html and 'data-metric="accuracy"' in html
    assert html.count("<tr data-run=") == 2
    assert reverse("rlhf-run-metrics", args=[a.pk]) in html
    assert '<option value="accuracy" selected>' in html and '<option value="loss"' in html


def test_it_defaults_to_loss_and_ignores_junk_ids(client, manager, runs):
    a, _ = runs
    client.force_login(manager)
    html = client.get(reverse("rlhf-compare"), {"runs": [a.pk, "x", "99999"], "metric": "nope"}
                      ).content.decode()
    assert 'data-metric="loss"' in html and html.count("<tr data-run=") == 1


def test_the_runs_page_submits_selected_runs_to_compare(client, engineer, runs):
    client.force_login(engineer)
    html = client.get(reverse("rlhf-runs")).content.decode()
    assert f'action="{reverse("rlhf-compare")}"' in html
    assert html.count('name="runs"') == 2 and "Compare selected runs" in html


def test_annotators_cannot_compare(client, annotator, runs):
    client.force_login(annotator)
    assert client.get(reverse("rlhf-compare")).status_code == 403
