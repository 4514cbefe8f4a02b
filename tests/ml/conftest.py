"""Fixtures for the plain-ML tests: synthetic support chats and a tiny base model built once."""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import pytest  # noqa: E402

QUESTIONS = [
    (
        "How do I reset my password?",
        "Open the sign-in page, click Forgot password and follow the "
        "link we email you. It is valid for 30 minutes.",
    ),
    (
        "My package has not arrived yet.",
        "Sorry for the wait. Track it under Orders > Track "
        "package, and reply with your order number if it has not moved in 3 days.",
    ),
    (
        "How do I cancel my subscription?",
        "Go to Settings > Billing > Cancel subscription. Your "
        "plan stays active until the end of the billing period.",
    ),
    (
        "I was charged twice for one order.",
        "Sorry about that. Reply with the order number and we "
        "will refund the duplicate charge within 5 business days.",
    ),
    (
        "How do I change my email address?",
        "Open Settings > Profile > Email and confirm the link we send to the new address.",
    ),
    (
        "My item arrived broken.",
        "I am sorry it arrived damaged. Send us a photo and we will ship "
        "a replacement right away at no cost.",
    ),
]
UNHELPFUL = "Please read the documentation."


def support_conversations():
    """Return a dozen short customer-support chats, each ending with an assistant answer."""
    conversations = []
    for question, answer in QUESTIONS:
        conversations.append(
            [{"role": "user", "content": question}, {"role": "assistant", "content": answer}]
        )
        conversations.append(
            [
                {"role": "system", "content": "You are a friendly support agent."},
                {"role": "user", "content": f"Hi! {question} Thanks."},
                {"role": "assistant", "content": f"Happy to help. {answer}"},
            ]
        )
    return conversations


def preference_rows():
    """Return conversational preference rows with the extra keys the Django side adds."""
    rows = []
    for index, (question, answer) in enumerate(QUESTIONS * 2):
        prompt = [{"role": "user", "content": question if index < 6 else f"Hello. {question}"}]
        rows.append(
            {
                "id": index,
                "judgement_id": 100 + index,
                "prompt_id": f"p-{index}",
                "prompt": prompt,
                "chosen": [{"role": "assistant", "content": answer}],
                "rejected": [{"role": "assistant", "content": UNHELPFUL}],
            }
        )
    return rows


TINY = {
    "vocab_size": 400,
    "hidden_size": 32,
    "intermediate_size": 64,
    "num_layers": 2,
    "num_heads": 2,
    "max_position": 256,
    "max_steps": 30,
    "batch_size": 8,
    "learning_rate": 3e-3,
}


@pytest.fixture(scope="session")
def tiny_config():
    from rlhf.ml.config import BaseModelConfig

    return BaseModelConfig.from_dict(TINY)


@pytest.fixture(scope="session")
def ml_base_model(tmp_path_factory, tiny_config):
    """Path of a tiny base model trained on the synthetic chats, with the progress it reported."""
    from rlhf.ml.base_model import build_base_model

    calls = []
    out = tmp_path_factory.mktemp("ml") / "base"
    path = build_base_model(
        support_conversations(), out, tiny_config, lambda f, m: calls.append((f, m))
    )
    return path, calls


@pytest.fixture
def support_chats():
    return support_conversations()


@pytest.fixture
def preference_pairs():
    return preference_rows()
