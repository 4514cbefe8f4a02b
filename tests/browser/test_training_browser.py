"""The engineer's loop in a real browser, through a real Celery worker and a tiny model.

Launch a run from the generated form (a preset, then max steps), watch its curves fill in,
compare it with a second run, promote its output and read that version's win-rate.
"""

import os
import re
import uuid
from pathlib import Path

import pytest

from annotate import queue
from annotate.importing import import_file
from annotate.models import Candidate, Project, Prompt
from annotate.services import submit_judgement
from rlhf import services
from rlhf.ml.config import KTORunConfig
from rlhf.models import ModelVersion, PolicyEvaluation, RunMetric, TrainingRun
from tests import factories
from tests.browser.conftest import login
from tests.services import wait_for

expect = pytest.importorskip(
    "playwright.sync_api", reason="playwright is not installed (pip install -e '.[dev]')"
).expect

pytestmark = [pytest.mark.browser, pytest.mark.integration,
              pytest.mark.django_db(transaction=True)]

DEMO = Path(__file__).resolve().parents[2] / "demo" / "support_prompts.jsonl"
POSITIVE = re.compile(r"^[1-9]\d*$")
TRAINING_MS = 240_000  # a run on 2 CPU cores, with the worker loading TRL first


def shot(page, tmp_path, name):
    """Keep a full-page screenshot with the test (and in PREFLAB_SHOTS_DIR when set)."""
    page.screenshot(path=str(tmp_path / f"{name}.png"), full_page=True)
    target = os.environ.get("PREFLAB_SHOTS_DIR")
    if target:
        page.screenshot(path=str(Path(target) / f"{name}.png"), full_page=True)


def annotated_demo_project(base, n_rows=12, n_eval=2):
    """The first demo rows, a few prompts held out for evaluation, every item ranked once."""
    project = factories.project("support-demo", name="Customer support (demo)", overlap=1)
    import_file(project, "demo.jsonl", b"\n".join(DEMO.read_bytes().splitlines()[:n_rows]))
    held_out = list(project.prompts.order_by("-id").values_list("id", flat=True)[:n_eval])
    Prompt.objects.filter(id__in=held_out).update(split=Prompt.Split.EVAL)
    project.current_model = base
    project.save(update_fields=["current_model"])
    annotator = factories.user("ann", "Annotator")
    # A stand-in for human taste: longer answers first.
    while (assignment := queue.claim_next(project, annotator)) is not None:
        texts = dict(Candidate.objects.filter(id__in=assignment.shown_order)
                     .values_list("id", "text"))
        ranking = sorted(assignment.shown_order, key=lambda cid: -len(texts[cid]))
        submit_judgement(annotator, assignment.pk, [[cid] for cid in ranking], uuid.uuid4())
    return project


def tiny_reward_model(project, base, tiny_model_dir, out_dir):
    from tests.ml_support import build_tiny_reward_model

    source = build_tiny_reward_model(tiny_model_dir, out_dir, max_steps=2)
    version = ModelVersion.objects.create(name="tiny-rm", source=str(source), parent=base,
                                          kind=ModelVersion.Kind.REWARD, project=project)
    Project.objects.filter(pk=project.pk).update(reward_model=version)
    return version


def press(page, locator, key="Enter"):
    """Focus an element and press a key on it, as a keyboard user would."""
    locator.focus()
    expect(locator).to_be_focused()
    page.keyboard.press(key)


def test_an_engineer_trains_watches_compares_promotes_and_reads_the_win_rate(
    page, live_server, celery_worker, tiny_model_dir, tmp_path
):
    base = ModelVersion.objects.create(name="tiny-base", source=str(tiny_model_dir))
    project = annotated_demo_project(base)
    factories.user("erin", "Engineer")
    login(page, live_server, "erin")

    # 1. The DPO form: a preset by keyboard, then a short run.
    page.goto(f"{live_server.url}/rlhf/projects/{project.slug}/train/?method=dpo")
    expect(page.locator("h1")).to_have_text("New DPO run")
    expect(page.locator("#id_base_model")).to_have_value(str(base.pk))
    with page.expect_navigation():
        press(page, page.locator('a[data-preset="demo"]'))
    expect(page.locator('a[data-preset="demo"]')).to_have_attribute("aria-current", "true")
    expect(page.locator("#id_learning_rate")).to_have_value("0.0005")
    expect(page.locator("#id_per_device_train_batch_size")).to_have_value("8")
    expect(page.locator("#id_beta")).to_have_value("0.1")
    page.locator("#id_max_steps").focus()
    page.keyboard.press("ControlOrMeta+A")
    page.keyboard.type("3")
    page.keyboard.press("Tab")
    page.keyboard.press("ControlOrMeta+A")   # max length: shorter rows train faster
    page.keyboard.type("128")
    with page.expect_navigation():
        page.keyboard.press("Enter")        # implicit submission: Queue run
    dpo = TrainingRun.objects.get(project=project)
    assert page.url.endswith(f"/rlhf/runs/{dpo.pk}/")
    assert dpo.method == "dpo" and dpo.created_by.username == "erin"
    assert dpo.config["max_steps"] == 3 and dpo.config["max_length"] == 128
    assert dpo.config["learning_rate"] == 5e-4

    # 2. A second method queued behind it; the reward model for the win-rate built meanwhile.
    kto = services.launch_run(project, KTORunConfig(max_steps=2, per_device_train_batch_size=4,
                                                    max_length=128), base)
    reward_model = tiny_reward_model(project, base, tiny_model_dir, tmp_path / "rm")

    # Live curves: the badge turns Succeeded, the lead charts and every other metric fill in.
    expect(page.get_by_test_id("run-status")).to_have_text("Succeeded", timeout=TRAINING_MS)
    root = page.locator("#metrics-root")
    expect(root).to_have_attribute("data-finished", "1")
    expect(root).to_have_attribute("data-points", POSITIVE)
    expect(root).to_have_attribute("data-charts", re.compile(r"^([4-9]|\d\d+)$"))
    expect(page.locator("#all-metrics canvas[data-extra-metric]").first).to_be_visible()
    for name in ("loss", "rewards/margins", "rewards/accuracies"):  # the DPO lead charts
        expect(page.locator(f'canvas[data-metric="{name}"]')).to_be_visible()
    expect(page.get_by_test_id("output-model")).to_be_visible()
    dpo.refresh_from_db()
    assert dpo.status == "succeeded", f"{dpo.error}\n{celery_worker.output()}"
    logged = set(RunMetric.objects.filter(run=dpo).values_list("name", flat=True))
    lead = {"loss", "rewards/margins", "rewards/accuracies"}
    assert int(root.get_attribute("data-charts")) == len(
        lead | {n.removeprefix("eval_") for n in logged}
    )
    shot(page, tmp_path, "run-detail")

    kto = wait_for(lambda: TrainingRun.objects.filter(pk=kto.pk, status__in=(
        "succeeded", "failed", "cancelled")).first(), TRAINING_MS / 1000, message="the KTO run")
    assert kto.status == "succeeded", f"{kto.error}\n{celery_worker.output()}"

    # Compare: tick both runs with Space, submit the form.
    page.goto(f"{live_server.url}/rlhf/")
    for run in (dpo, kto):
        box = page.get_by_label(f"Compare {run}", exact=True)
        press(page, box, "Space")
        expect(box).to_be_checked()
    with page.expect_navigation():
        press(page, page.get_by_role("button", name="Compare selected runs"))
    expect(page.locator("#compare-root")).to_have_attribute("data-metric", "loss")
    expect(page.locator("#metric")).to_have_value("loss")
    for run in (dpo, kto):
        row = page.locator(f'tr[data-run="{run.pk}"]')
        expect(row).to_have_attribute("data-points", POSITIVE)
        expect(row.locator("[data-last]")).not_to_have_text("—")
    shot(page, tmp_path, "compare")

    # 3. Promote the DPO output to the project's current generator.
    output = dpo.output_model
    page.goto(f"{live_server.url}/rlhf/models/{output.pk}/")
    expect(page.get_by_test_id("current")).to_have_count(0)
    with page.expect_navigation():
        press(page, page.get_by_role("button", name="Promote to current generator"))
    expect(page.get_by_test_id("current")).to_have_text("Current generator")
    expect(page.get_by_role("button", name="Promote to current generator")).to_have_count(0)
    expect(page.locator(".messages")).to_contain_text("is now the current model")
    project.refresh_from_db()
    assert project.current_model_id == output.pk

    # 4. The win-rate against its parent, judged by the reward model on the held-out prompts.
    expect(page.locator("#rm")).to_have_value(str(reward_model.pk))
    page.locator("#n-rm").fill("2")
    with page.expect_navigation():
        press(page, page.locator("#n-rm"))  # Enter submits the reward-model form
    evaluation = PolicyEvaluation.objects.get(policy=output)
    assert evaluation.judge == "reward" and evaluation.baseline == base
    assert len(evaluation.prompt_ids) == 2
    expect(page.get_by_test_id("eval-status")).to_have_text("Succeeded", timeout=TRAINING_MS)
    evaluation.refresh_from_db()
    results = evaluation.results
    assert results["n"] == 2 and results["wins"] + results["ties"] + results["losses"] == 2
    win_rate = f"{results['win_rate']:.3f}"
    interval = f"{results['ci_low']:.3f}–{results['ci_high']:.3f}"
    expect(page.get_by_test_id("win-rate")).to_have_text(win_rate)
    expect(page.get_by_test_id("ci")).to_have_text(interval)
    assert results["ci_low"] <= results["win_rate"] <= results["ci_high"]
    shot(page, tmp_path, "evaluation")

    page.get_by_role("link", name="Model", exact=True).click()
    row = page.locator("tr", has=page.get_by_role("link", name=f"#{evaluation.pk}"))
    expect(row).to_contain_text("Succeeded")
    expect(row).to_contain_text(win_rate)
    expect(row).to_contain_text(interval)
    shot(page, tmp_path, "model")
