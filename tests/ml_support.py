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


def demo_preference_rows(limit=40):
    """Conversational preference rows from the demo data: helpful answers over the others."""
    from rlhf.ml.data import read_jsonl

    rows = []
    for record in read_jsonl(ROOT / "demo" / "support_prompts.jsonl")[:limit]:
        qualities = (record.get("metadata") or {}).get("qualities") or []
        texts = record.get("candidates") or []
        good = [t for t, q in zip(texts, qualities, strict=False) if q == "helpful"]
        bad = [t for t, q in zip(texts, qualities, strict=False) if q != "helpful"]
        prompt = record["prompt"]
        if isinstance(prompt, str):
            prompt = [{"role": "user", "content": prompt}]
        for chosen in good[:1]:
            for rejected in bad[:2]:
                rows.append({
                    "prompt": prompt,
                    "chosen": [{"role": "assistant", "content": chosen}],
                    "rejected": [{"role": "assistant", "content": rejected}],
                })
    return rows


def build_tiny_reward_model(base_dir, out_dir, max_steps=4):
    """Train a tiny reward model from the tiny base for a few steps (seconds on CPU)."""
    from rlhf.ml.config import RewardRunConfig
    from rlhf.ml.reward import train

    config = RewardRunConfig(max_steps=max_steps, per_device_train_batch_size=4,
                             learning_rate=3e-3)
    result = train(config, demo_preference_rows(), [], model_path=str(base_dir),
                   output_dir=str(out_dir))
    return result.output_dir
