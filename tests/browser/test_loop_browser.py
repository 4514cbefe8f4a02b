"""The loop page in a real browser with a real worker: set the policy, run an iteration, watch
the timeline fill in, then roll the promoted model back."""

import json

import pytest

from rlhf.models import LoopIteration, ModelVersion
from tests import factories
from tests.browser.conftest import login
from tests.browser.test_training_browser import annotated_demo_project, shot

expect = pytest.importorskip(
    "playwright.sync_api", reason="playwright is not installed (pip install -e '.[dev]')"
).expect

pytestmark = [pytest.mark.browser, pytest.mark.integration,
              pytest.mark.django_db(transaction=True)]
ITERATION_MS = 420_000  # two tiny runs and an evaluation on 2 CPU cores


def test_an_engineer_runs_the_loop_and_reads_its_timeline(page, live_server, celery_worker,
                                                          tiny_model_dir, tmp_path):
    base = ModelVersion.objects.create(name="tiny-base", source=str(tiny_model_dir))
    project = annotated_demo_project(base, n_rows=12, n_eval=3)
    factories.user("erin", "Engineer")
    login(page, live_server, "erin")

    page.goto(f"{live_server.url}/projects/{project.slug}/")
    page.get_by_test_id("loop-link").focus()
    with page.expect_navigation():
        page.keyboard.press("Enter")
    expect(page.get_by_test_id("loop-state")).to_contain_text("disabled")

    small = {"max_steps": 2, "per_device_train_batch_size": 4, "max_length": 128,
             "eval_fraction": 0.0}
    page.get_by_label("Enabled").check()
    page.get_by_label("New judgements per iteration").fill("5")
    page.get_by_label("Run settings").fill(json.dumps({"reward": small, "dpo": small}))
    page.get_by_label("Gate (minimum win-rate)").fill("0")
    page.get_by_label("Eval prompts").fill("3")
    page.get_by_label("Generate prompts").fill("2")
    with page.expect_navigation():
        page.get_by_role("button", name="Save policy").click()
    expect(page.get_by_test_id("loop-state")).to_contain_text("on")
    expect(page.get_by_test_id("timeline")).to_contain_text("Loop policy saved: enabled")

    with page.expect_navigation():
        page.get_by_role("button", name="Run an iteration now").click()
    expect(page.get_by_test_id("running")).to_contain_text("iteration")
    # The state fragment polls while the iteration runs and stops when it is over.
    expect(page.get_by_test_id("iteration").first).to_contain_text("Promoted",
                                                                   timeout=ITERATION_MS)
    timeline = page.get_by_test_id("timeline")
    for text in ("Reward model run", "DPO run", "win-rate", "Promoted", "Generation job"):
        expect(timeline).to_contain_text(text)
    iteration = LoopIteration.objects.get(project=project)
    expect(page.get_by_test_id("current-model")).to_contain_text(iteration.candidate.name)
    shot(page, tmp_path, "loop-promoted")

    page.get_by_label("Version").select_option(str(base.pk))
    with page.expect_navigation():
        page.get_by_role("button", name="Roll back").click()
    expect(page.get_by_test_id("current-model")).to_contain_text("tiny-base")
    expect(page.get_by_test_id("timeline")).to_contain_text("rolled back")
    project.refresh_from_db()
    assert project.current_model == base
