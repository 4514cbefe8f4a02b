"""The managers' dashboard figures: right numbers, right people, CSV equal to the page."""

import csv
import io
import uuid
from datetime import timedelta

import numpy as np
import pytest
from django.urls import reverse
from django.utils import timezone

from annotate import agreement, dashboards, queue
from annotate.models import Candidate, DashboardCache, Item, Judgement
from annotate.services import Answer, submit_judgement
from annotate.tasks import refresh_dashboards
from tests import factories

pytestmark = pytest.mark.django_db


def judge_all(project, user, order, duration_ms=3000, flags=()):
    """Judge every item the user can get; `order(assignment)` gives best-first ids."""
    while (a := queue.claim_next(project, user)) is not None:
        ranking = ";".join(map(str, order(a)))
        submit_judgement(user, a.pk, Answer(ranking=ranking, flags=list(flags)), uuid.uuid4(),
                         duration_ms=duration_ms)


ascending = lambda a: sorted(a.shown_order)  # noqa: E731
descending = lambda a: sorted(a.shown_order, reverse=True)  # noqa: E731
first_shown = lambda a: a.shown_order  # noqa: E731


@pytest.fixture
def judged():
    """Four annotators on 6 items of 3 candidates: three agree, one reverses everything."""
    project = factories.project_with_items(n_prompts=6, n_candidates=3, overlap=4)
    ann = {name: factories.user(name, "Annotator") for name in ("ada", "bob", "cyd", "dan")}
    judge_all(project, ann["ada"], ascending, duration_ms=2000)
    judge_all(project, ann["bob"], ascending, duration_ms=4000, flags=["pii"])
    judge_all(project, ann["cyd"], descending, duration_ms=9000)
    judge_all(project, ann["dan"], ascending, duration_ms=3000)
    return project, ann


def expected_alpha(project):
    """Alpha built independently: one unit per (item, candidate pair), coders = annotators."""
    judgements = list(Judgement.objects.filter(item__project=project, retracted_at__isnull=True))
    users = sorted({j.annotator_id for j in judgements})
    units = {}
    for j in judgements:
        pos = {c: i for i, g in enumerate(j.ranking) for c in g}
        ids = sorted(pos)
        for x, a in enumerate(ids):
            for b in ids[x + 1:]:
                units.setdefault((j.item_id, a, b), {})[j.annotator_id] = np.sign(pos[a] - pos[b])
    matrix = np.full((len(users), len(units)), np.nan)
    for u, values in enumerate(units.values()):
        for user, v in values.items():
            matrix[users.index(user), u] = v
    return agreement.krippendorff_alpha(matrix, level="nominal")


def test_alpha_matches_the_reliability_matrix_built_by_annotator(judged):
    project, _ = judged
    data = dashboards.compute(project)
    assert data["overall"]["pairs"] == pytest.approx(expected_alpha(project), abs=1e-4)
    today = timezone.localdate().isoformat()
    point, = data["agreement"]["day"]["pairs"]
    assert point["period"] == today and point["items"] == 6 and point["units"] == 18
    assert point["alpha"] == pytest.approx(data["overall"]["pairs"], abs=1e-4)


def test_per_annotator_figures(judged):
    project, ann = judged
    rows = {r["annotator"]: r for r in dashboards.compute(project)["annotators"]}
    assert {n: r["judgements"] for n, r in rows.items()} == {"ada": 6, "bob": 6, "cyd": 6,
                                                             "dan": 6}
    assert (rows["ada"]["median_seconds"], rows["cyd"]["median_seconds"]) == (2.0, 9.0)
    # ada, bob and dan agree with the majority of the others; cyd never does.
    assert rows["ada"]["agreement"] == 1.0 and rows["cyd"]["agreement"] == 0.0
    assert rows["bob"]["flags"] == 6 and rows["ada"]["flags"] == 0


def test_position_bias_is_measured_against_what_was_shown():
    project = factories.project_with_items(n_prompts=8, n_candidates=2, overlap=2)
    judge_all(project, factories.user("lazy", "Annotator"), first_shown)
    judge_all(project, factories.user("fair", "Annotator"), ascending)
    data = dashboards.compute(project)
    rows = {r["annotator"]: r for r in data["annotators"]}
    assert rows["lazy"]["first_shown_rate"] == 1.0
    shown_first = Judgement.objects.filter(annotator__username="fair")
    expected = np.mean([j.ranking[0][0] == j.shown_order[0] for j in shown_first])
    assert rows["fair"]["first_shown_rate"] == pytest.approx(expected)
    assert data["bias_pool"]["first_shown_chance"] == 0.5


def test_length_bias_counts_picks_of_the_longer_response():
    project = factories.project_with_items(n_prompts=4, n_candidates=2, overlap=1)
    for item in Item.objects.filter(project=project):
        short, long_ = item.candidates.order_by("id")
        Candidate.objects.filter(pk=long_.pk).update(text=long_.text * 5)
    judge_all(project, factories.user("verbose", "Annotator"), descending)  # higher id = longer
    rows = dashboards.compute(project)["annotators"]
    assert rows[0]["longer_rate"] == 1.0


def test_distributions_and_flags(judged):
    project, _ = judged
    data = dashboards.compute(project)
    assert data["flags"] == [{"flag": "pii", "count": 6}]
    assert sum(r["judgements"] for r in data["best_position"]) == 24
    assert data["per_day"] == [{"day": timezone.localdate().isoformat(), "judgements": 24,
                                "items": 6}]


def test_ratings_get_alpha_per_dimension():
    project = factories.project_with_items(n_prompts=3, n_candidates=2, overlap=2,
                                           judgement_kinds=["rating"],
                                           rating_dimensions=["helpfulness"])
    for name, offset in (("r1", 0), ("r2", 0)):
        user = factories.user(name, "Annotator")
        while (a := queue.claim_next(project, user)) is not None:
            ratings = {str(c): {"helpfulness": 1 + (c % 5) + offset} for c in a.shown_order}
            submit_judgement(user, a.pk, Answer(ratings=ratings), uuid.uuid4())
    data = dashboards.compute(project)
    assert data["overall"]["helpfulness"] == 1.0
    assert sum(r["count"] for r in data["ratings"]) == 12


def test_an_empty_project_has_defined_figures():
    project = factories.project_with_items(n_prompts=2)
    data = dashboards.compute(project)
    assert data["judgements"] == 0 and data["overall"]["pairs"] is None
    assert data["annotators"] == [] and data["agreement"]["day"]["pairs"] == []


# --- views -----------------------------------------------------------------------------------

def test_the_page_shows_the_figures_and_each_csv_matches_it(client, judged):
    project, _ = judged
    client.force_login(factories.user("mgr", "Manager"))
    html = client.get(reverse("dashboard-project", args=[project.slug])).content.decode()
    data = DashboardCache.objects.get(project=project).data
    assert f'data-testid="alpha">{data["overall"]["pairs"]:.3f}<' in html
    response = client.get(reverse("dashboard-csv", args=[project.slug, "annotators"]))
    assert response.status_code == 200 and response["Content-Type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(response.content.decode())))
    assert [r["annotator"] for r in rows] == [r["annotator"] for r in data["annotators"]]
    for row in rows:
        # Every CSV row is a row of the page's table, with the same figures.
        cells = html.split(f'<td data-value="{row["annotator"]}">')[1].split("</tr>")[0]
        assert f'data-value="{row["judgements"]}"' in cells
        assert f'data-value="{row["median_seconds"]}"' in cells
    per_day = client.get(reverse("dashboard-csv", args=[project.slug, "per-day"]))
    lines = per_day.content.decode().splitlines()
    assert lines[0] == "day,judgements,items" and lines[1].endswith(",24,6")
    agreement_csv = client.get(reverse("dashboard-csv", args=[project.slug, "agreement"]))
    assert "day,pairs," in agreement_csv.content.decode()


def test_every_table_downloads(client, judged):
    project, _ = judged
    client.force_login(factories.user("mgr", "Manager"))
    from annotate.views import DASHBOARD_TABLES

    for table in DASHBOARD_TABLES:
        response = client.get(reverse("dashboard-csv", args=[project.slug, table]))
        assert response.status_code == 200, table
    assert client.get(reverse("dashboard-csv", args=[project.slug, "nope"])).status_code == 404


def test_csv_cells_cannot_become_spreadsheet_formulas(client):
    project = factories.project_with_items(n_prompts=1, n_candidates=2, overlap=1)
    judge_all(project, factories.user("=HYPERLINK(1)", "Annotator"), ascending)
    client.force_login(factories.user("mgr", "Manager"))
    body = client.get(reverse("dashboard-csv", args=[project.slug, "annotators"])).content
    assert b"'=HYPERLINK(1)" in body


def test_who_may_see_the_dashboard_and_its_csv(client, judged):
    project, _ = judged
    urls = [reverse("dashboard-project", args=[project.slug]),
            reverse("dashboard-csv", args=[project.slug, "annotators"])]
    for url in urls:
        assert client.get(url).status_code == 302  # anonymous → login
    for role, status in (("Annotator", 403), ("Reviewer", 403), ("Manager", 200),
                         ("Engineer", 200)):
        client.force_login(factories.user(f"w-{role}", role))
        for url in urls:
            assert client.get(url).status_code == status, (role, url)
    client.force_login(factories.user("w-ann2", "Annotator"))
    refresh = reverse("dashboard-refresh", args=[project.slug])
    assert client.post(refresh).status_code == 403


def test_new_judgements_make_small_projects_recompute_on_view(client):
    project = factories.project_with_items(n_prompts=2, n_candidates=2, overlap=2)
    judge_all(project, factories.user("one", "Annotator"), ascending)
    client.force_login(factories.user("mgr", "Manager"))
    client.get(reverse("dashboard-project", args=[project.slug]))
    assert DashboardCache.objects.get(project=project).judgements == 2
    judge_all(project, factories.user("two", "Annotator"), ascending)
    client.get(reverse("dashboard-project", args=[project.slug]))
    assert DashboardCache.objects.get(project=project).judgements == 4


def test_large_projects_show_the_cached_figures_and_ask_the_worker(client, monkeypatch):
    project = factories.project_with_items(n_prompts=2, n_candidates=2, overlap=2)
    judge_all(project, factories.user("one", "Annotator"), ascending)
    dashboards.refresh(project)
    judge_all(project, factories.user("two", "Annotator"), ascending)
    monkeypatch.setattr(dashboards, "INLINE_LIMIT", 0)
    sent = []
    monkeypatch.setattr("annotate.views.refresh_dashboard.delay", sent.append)
    client.force_login(factories.user("mgr", "Manager"))
    html = client.get(reverse("dashboard-project", args=[project.slug])).content.decode()
    assert "the worker is recomputing them" in html and "(2 judgements" in html
    assert sent == [project.pk]
    client.get(reverse("dashboard-project", args=[project.slug]))
    assert sent == [project.pk]  # asked once a minute at most


def test_the_beat_task_refreshes_projects_with_news():
    quiet = factories.project_with_items(n_prompts=1, n_candidates=2, overlap=1)
    busy = factories.project_with_items(n_prompts=2, n_candidates=2, overlap=1)
    judge_all(quiet, factories.user("q", "Annotator"), ascending)
    assert refresh_dashboards() == 2  # neither had figures yet
    computed = DashboardCache.objects.get(project=quiet).computed_at
    judge_all(busy, factories.user("b", "Annotator"), ascending)
    assert refresh_dashboards() == 1
    assert DashboardCache.objects.get(project=quiet).computed_at == computed
    assert DashboardCache.objects.get(project=busy).judgements == 2


def test_throughput_per_hour_covers_the_last_two_days(judged):
    project, _ = judged
    old = timezone.now() - timedelta(days=3)
    Judgement.objects.filter(annotator__username="cyd").update(created_at=old)
    data = dashboards.compute(project)
    assert sum(r["judgements"] for r in data["per_hour"]) == 18
    assert [r["judgements"] for r in data["per_day"]] == [6, 18]
