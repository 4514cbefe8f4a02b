"""A very small base model built from the shipped demo data, cached between test runs."""

from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CACHE = ROOT / "var" / "cache" / "test-base-model"

# Small enough to build in seconds on 2 cores; big enough for DPO to move its weights.
TINY = {
    "vocab_size": 400, "hidden_size": 32, "intermediate_size": 64, "num_layers": 2,
    "num_heads": 2, "max_position": 256, "max_steps": 30, "batch_size": 8,
    "learning_rate": 3e-3,
}


def tiny_config():
    from rlhf.ml.config import BaseModelConfig

    return BaseModelConfig.from_dict(TINY)


def build_tiny_model(out_dir=CACHE, limit=60):
    from rlhf.ml.base_model import build_base_model, demo_conversations
    from rlhf.ml.data import read_jsonl

    rows = read_jsonl(ROOT / "demo" / "support_prompts.jsonl")[:limit]
    return build_base_model(demo_conversations(rows), str(out_dir), config=tiny_config())
