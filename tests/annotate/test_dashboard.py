"""The manager's dashboard: queue progress, judgements per day, agreement, latest run."""

import uuid

from django.urls import reverse

from annotate import queue
from annotate.agreement import pairwise_percent_agreement
from annotate.services import submit_judgement
from rlhf.models import ModelVersion, TrainingRun
from tests import factories


def test_pairwise_agreement_counts_pairs_ordered_alike():
    same = [[[1], [2], [3]], [[1], [2], [3]]]
    flipped = [[[1], [2]], [[2], [1]]]
    assert pairwise_percent_agreement([same]) == (1.0, 3)
    assert pairwise_percent_agreement([flipped]) == (0.0, 1)
    assert pairwise_percent_agreement([same, flipped]) == (0.75, 4)
    assert pairwise_percent_agreement([[[[1], [2]]]]) == (None, 0)


def test_it_shows_progress_agreement_and_the_latest_curve(client, manager):
    project = factories.project_with_items(n_prompts=2, n_candidates=2, overlap=2)
    for name in ("a1", "a2"):
        user = factories.user(name, "Annotator")
        while (a := queue.claim_next(project, user)) is not None:
            submit_judgement(user, a.pk, ";".join(map(str, sorted(a.shown_order))), uuid.uuid4())
    base = ModelVersion.objects.create(name="b", source="/b")
    run = TrainingRun.objects.create(project=project, base_model=base, status="succeeded")
    run.metrics.create(step=1, name="rewards/margins", value=0.25)
    client.force_login(manager)
    response = client.get(reverse("dashboard-project", args=[project.slug]))
    html = response.content.decode()
    assert response.status_code == 200
    assert "4</strong><span>judgements of 4 wanted" in html
    assert '<strong data-testid="agreement">1.00</strong>' in html
    assert "2 comparisons on 2 items" in html
    assert '"rewards/margins"' in html and str(run) in html
