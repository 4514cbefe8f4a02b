"""Run forms for every method: generated from the config, presets, refusals before queueing."""

import dataclasses

import pytest
from django.urls import reverse

from rlhf import services
from rlhf.ml.config import PRESETS, RUN_CONFIGS, preset_config
from rlhf.models import ModelVersion, TrainingRun


@pytest.fixture
def base(db):
    return ModelVersion.objects.create(name="base", source="/models/base")


@pytest.mark.parametrize("method", sorted(RUN_CONFIGS))
def test_it_offers_every_setting_of_every_method_with_help(client, engineer, project, base,
                                                           method):
    client.force_login(engineer)
    html = client.get(reverse("rlhf-run-new", args=[project.slug]), {"method": method}
                      ).content.decode()
    for f in dataclasses.fields(RUN_CONFIGS[method]):
        assert f'name="{f.name}"' in html, f.name
    assert html.count('class="helptext"') == len(dataclasses.fields(RUN_CONFIGS[method])) + 1
    for title in ("Training", "Held-out evaluation", "LoRA", "Data filters"):
        assert f"<legend>{title}</legend>" in html
    for preset in PRESETS[method]:
        assert f'data-preset="{preset}"' in html


@pytest.mark.parametrize(("method", "preset"),
                         [(m, p) for m in sorted(PRESETS) for p in PRESETS[m]])
def test_every_preset_is_a_valid_config(method, preset):
    config = preset_config(method, preset)
    for key, value in PRESETS[method][preset]["values"].items():
        assert getattr(config, key) == value


def test_a_preset_fills_the_form(client, engineer, project, base):
    client.force_login(engineer)
    html = client.get(reverse("rlhf-run-new", args=[project.slug]),
                      {"method": "dpo", "preset": "robust"}).content.decode()
    assert '<option value="ipo" selected>' in html
    assert 'name="beta" value="0.5"' in html and 'aria-current="true" data-preset="robust"' in html


def test_it_queues_a_kto_run_with_lora_and_filters(client, engineer, project, base,
                                                  django_capture_on_commit_callbacks,
                                                  monkeypatch):
    monkeypatch.setattr("rlhf.tasks.train.apply_async", lambda args, **kw: None)
    client.force_login(engineer)
    data = {"method": "kto", "base_model": base.pk, "learning_rate": "0.001", "max_steps": "3",
            "use_lora": "on", "lora_r": "4", "exclude_flagged": "on", "min_agreement": "0.5",
            "rating_threshold": "0.6"}
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(reverse("rlhf-run-new", args=[project.slug]), data)
    run = TrainingRun.objects.get()
    assert response.status_code == 302
    assert run.method == "kto"
    assert run.config["use_lora"] is True and run.config["lora_r"] == 4
    assert run.config["exclude_flagged"] is True and run.config["min_agreement"] == 0.5
    # Left empty, a setting takes the config's default.
    assert run.config["beta"] == 0.1 and run.config["only_reviewed"] is False


@pytest.mark.parametrize(
    ("method", "data", "message"),
    [
        ("grpo", {}, "Online RL needs a reward model"),
        ("kto", {"per_device_train_batch_size": "1"}, "KTO needs a batch size of at least 2"),
        ("sft", {"early_stopping_patience": "2"}, "early stopping needs held-out data"),
        ("rloo", {"num_generations": "3", "per_device_train_batch_size": "4"},
         "must be a multiple of num_generations"),
        ("dpo", {"min_agreement": "1.5"}, "less than or equal to 1.0"),
    ],
)
def test_it_refuses_settings_that_cannot_run_before_queueing(client, engineer, project, base,
                                                              method, data, message):
    client.force_login(engineer)
    response = client.post(reverse("rlhf-run-new", args=[project.slug]),
                           {"method": method, "base_model": base.pk, **data})
    assert response.status_code == 200
    assert message in response.content.decode()
    assert not TrainingRun.objects.exists()


def test_it_refuses_a_reward_model_as_base_and_another_projects_reward_model(project, base):
    from tests import factories

    rm = ModelVersion.objects.create(name="rm", kind="reward", source="/rm", project=project)
    config = RUN_CONFIGS["dpo"]()
    with pytest.raises(services.InvalidRun, match="not a policy"):
        services.launch_run(project, config, rm)
    theirs = ModelVersion.objects.create(name="rm2", kind="reward", source="/rm",
                                         project=factories.project("elsewhere"))
    with pytest.raises(services.InvalidRun, match="is not a reward model of"):
        services.launch_run(project, RUN_CONFIGS["grpo"](reward_model=theirs.pk), base)
    assert not TrainingRun.objects.exists()
