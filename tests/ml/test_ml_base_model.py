import json
import time
from pathlib import Path

import pytest

from rlhf.ml.base_model import MARKER_FILE, build_base_model, demo_conversations, load_policy


def test_it_builds_a_model_that_loads_with_from_pretrained(ml_base_model):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path, progress = ml_base_model
    model = AutoModelForCausalLM.from_pretrained(path)
    tokenizer = AutoTokenizer.from_pretrained(path)
    assert any(Path(path).glob("*.safetensors"))
    assert model.config.vocab_size == len(tokenizer)
    assert tokenizer.pad_token and tokenizer.eos_token == "<|im_end|>"
    assert model.generation_config.eos_token_id == tokenizer.eos_token_id
    fractions = [fraction for fraction, _ in progress]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0 and len(fractions) >= 5
    marker = json.loads((Path(path) / MARKER_FILE).read_text())
    assert marker["config"]["hidden_size"] == 32 and len(marker["data_hash"]) == 64


def test_it_renders_a_chat_template_that_trl_can_train_on(ml_base_model):
    from transformers import AutoTokenizer
    from trl.chat_template_utils import has_generation_markers, is_chat_template_stop_token_trained

    tokenizer = AutoTokenizer.from_pretrained(ml_base_model[0])
    prompt = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Where is my order?"},
    ]
    full = [*prompt, {"role": "assistant", "content": "It ships today."}]
    rendered = tokenizer.apply_chat_template(full, tokenize=False)
    assert rendered == (
        "<|bos|><|im_start|>system\nBe brief.<|im_end|>\n"
        "<|im_start|>user\nWhere is my order?<|im_end|>\n"
        "<|im_start|>assistant\nIt ships today.<|im_end|>\n"
    )
    prompt_ids = tokenizer.apply_chat_template(prompt, add_generation_prompt=True, return_dict=True)
    full_ids = tokenizer.apply_chat_template(full, return_dict=True)
    # DPOTrainer splits prompt from completion at the common token prefix.
    assert full_ids["input_ids"][: len(prompt_ids["input_ids"])] == prompt_ids["input_ids"]
    assert has_generation_markers(tokenizer.chat_template)
    assert is_chat_template_stop_token_trained(tokenizer)


def test_it_reuses_a_cached_build_without_retraining(ml_base_model, tiny_config, support_chats):
    path, _ = ml_base_model
    files = sorted(Path(path).iterdir())
    before = {f.name: f.stat().st_mtime_ns for f in files}
    calls = []
    started = time.monotonic()
    again = build_base_model(support_chats, path, tiny_config, lambda *a: calls.append(a))
    assert again == path
    assert time.monotonic() - started < 1.0
    assert calls == [(1.0, "base model already built")]
    assert {f.name: f.stat().st_mtime_ns for f in sorted(Path(path).iterdir())} == before


def test_it_refuses_to_overwrite_a_directory_it_did_not_create(
    tmp_path, tiny_config, support_chats
):
    (tmp_path / "notes.txt").write_text("keep me")
    small = type(tiny_config).from_dict({**tiny_config.to_dict(), "max_steps": 1})
    with pytest.raises(ValueError, match="does not hold a preflab base model"):
        build_base_model(support_chats[:2], tmp_path, small)
    assert (tmp_path / "notes.txt").read_text() == "keep me"


def test_it_rejects_conversations_that_do_not_end_with_the_assistant(tmp_path, tiny_config):
    with pytest.raises(ValueError, match="must end with an assistant turn"):
        build_base_model([[{"role": "user", "content": "hi"}]], tmp_path / "m", tiny_config)


def test_it_turns_demo_rows_into_helpful_conversations():
    rows = [
        {
            "prompt": "Where is my parcel?",
            "candidates": ["Go away.", "It ships today; here is the tracking link."],
            "metadata": {"qualities": ["rude", "helpful"]},
        },
        {
            "prompt": [
                {"role": "user", "content": "Hi"},
                {"role": "assistant", "content": "Hello!"},
                {"role": "user", "content": "Refund please"},
            ],
            "candidates": ["Sure, refunded.", "Done."],
        },
    ]
    conversations = demo_conversations(rows)
    assert conversations[0] == [
        {"role": "user", "content": "Where is my parcel?"},
        {"role": "assistant", "content": "It ships today; here is the tracking link."},
    ]
    assert len(conversations) == 3
    assert [m["role"] for m in conversations[1]] == ["user", "assistant", "user", "assistant"]
    assert conversations[2][-1]["content"] == "Done."


def test_it_loads_a_policy_with_a_pad_token(ml_base_model):
    model, tokenizer = load_policy(ml_base_model[0])
    assert tokenizer.pad_token_id is not None
    assert model.generation_config.pad_token_id == tokenizer.pad_token_id
    assert not model.training
