import json

import pytest

from rlhf.ml.__main__ import main
from rlhf.ml.config import SampleConfig
from rlhf.ml.generate import EMPTY_FALLBACK, RESAMPLE_ATTEMPTS, _usable, generate

PROMPTS = [
    [{"role": "user", "content": "How do I reset my password?"}],
    [{"role": "user", "content": "My item arrived broken."}],
    [
        {"role": "system", "content": "You are a friendly support agent."},
        {"role": "user", "content": "How do I cancel my subscription?"},
    ],
]


def test_it_samples_non_empty_candidates_for_every_prompt(ml_base_model):
    progress = []
    config = SampleConfig(num_candidates=3, max_new_tokens=16, batch_size=6, seed=1)
    results = generate(
        ml_base_model[0], PROMPTS, config, on_progress=lambda *args: progress.append(args)
    )
    assert len(results) == len(PROMPTS)
    for candidates in results:
        assert len(candidates) == 3
        assert all(isinstance(text, str) and text and text == text.strip() for text in candidates)
        assert not any("<|im_end|>" in text or "<|im_start|>" in text for text in candidates)
    # batch_size 6 / 3 candidates = 2 prompts per batch
    assert progress == [(2, 3), (3, 3)]
    assert generate(ml_base_model[0], PROMPTS, config) == results


def test_it_stops_between_batches_when_asked(ml_base_model):
    config = SampleConfig(num_candidates=2, max_new_tokens=8, batch_size=2)
    results = generate(ml_base_model[0], PROMPTS, config, should_stop=lambda: False)
    assert len(results) == 3
    done = []
    results = generate(
        ml_base_model[0],
        PROMPTS,
        config,
        on_progress=lambda d, t: done.append(d),
        should_stop=lambda: bool(done),
    )
    assert len(results) == 1 and done == [1]


def test_it_rejects_prompts_that_do_not_end_with_a_user_turn(ml_base_model):
    with pytest.raises(ValueError, match="must end with a user turn"):
        generate(ml_base_model[0], [[{"role": "assistant", "content": "hi"}]], SampleConfig())


class ScriptedSampler:
    def __init__(self, outputs):
        self.outputs = list(outputs)
        self.calls = 0

    def sample(self, prompts, per_prompt):
        self.calls += 1
        return [[self.outputs.pop(0)]]


def test_it_resamples_empty_or_duplicate_candidates_then_falls_back():
    sampler = ScriptedSampler(["", "second try"])
    assert _usable(sampler, PROMPTS[0], "", []) == "second try"
    assert sampler.calls == 2
    sampler = ScriptedSampler([""] * 10)
    assert _usable(sampler, PROMPTS[0], "", []) == EMPTY_FALLBACK
    assert sampler.calls == RESAMPLE_ATTEMPTS
    sampler = ScriptedSampler(["same", "other"])
    assert _usable(sampler, PROMPTS[0], "same", ["same"]) == "other"
    sampler = ScriptedSampler(["same"] * 10)
    assert _usable(sampler, PROMPTS[0], "same", ["same"]) == "same"
    sampler = ScriptedSampler(["", "", ""])
    assert _usable(sampler, PROMPTS[0], "same", ["same"]) == "same"
    assert _usable(ScriptedSampler([]), PROMPTS[0], "fine", ["other"]) == "fine"


def test_it_samples_from_the_command_line(ml_base_model, capsys):
    status = main(
        ["generate", "--model", ml_base_model[0], "--prompt", "Where is my order?", "-n", "2"]
        + ["--max-new-tokens", "6", "--json"]
    )
    assert status == 0
    line = json.loads(capsys.readouterr().out)
    assert line["prompt"] == "Where is my order?" and len(line["candidates"]) == 2
