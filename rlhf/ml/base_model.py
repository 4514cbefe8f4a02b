"""Build a tiny from-scratch chat model (tokenizer + causal LM) and load policies for training."""

from __future__ import annotations

import json
import math
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

from .config import BaseModelConfig
from .data import canonical_json, json_sha256

ProgressFn = Callable[[float, str], None]
Message = dict[str, str]
Conversation = list[Message]

MARKER_FILE = "preflab_base.json"
# Bump when the recipe (template, tokenizer or training loop) changes so cached builds are redone.
FORMAT_VERSION = 1

PAD_TOKEN = "<|pad|>"
BOS_TOKEN = "<|bos|>"
TURN_START = "<|im_start|>"
TURN_END = "<|im_end|>"
ROLES = ("system", "user", "assistant")

# ChatML-style template. The {% generation %} block lets transformers compute assistant masks
# (return_assistant_tokens_mask) and TRL's SFTTrainer(assistant_only_loss=True) accept it; the
# end-of-turn token sits inside the block so the model is trained to stop, which TRL checks
# with is_chat_template_stop_token_trained. The generation prompt "<|im_start|>assistant\n" is
# exactly what precedes the block, so a prompt rendered with add_generation_prompt=True is a
# token prefix of the prompt+completion rendering, which DPOTrainer relies on to find where
# the completion starts.
CHAT_TEMPLATE = (
    "{{- bos_token }}"
    "{%- for message in messages %}"
    "{%- if message['role'] == 'assistant' %}"
    "{{- '<|im_start|>assistant\\n' }}"
    "{%- generation %}"
    "{{- message['content'] + '<|im_end|>\\n' }}"
    "{%- endgeneration %}"
    "{%- elif message['role'] in ['system', 'user'] %}"
    "{{- '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>\\n' }}"
    "{%- else %}"
    "{{- raise_exception('Unsupported role: ' + message['role']) }}"
    "{%- endif %}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}"
    "{{- '<|im_start|>assistant\\n' }}"
    "{%- endif %}"
)


def _report(progress: ProgressFn | None, fraction: float, message: str) -> None:
    if progress is not None:
        # Rounded so float noise (0.05 + 0.9 * 1.0) cannot make the sequence step backwards.
        progress(round(min(max(fraction, 0.0), 1.0), 4), message)


def _as_messages(prompt: Any) -> Conversation:
    if isinstance(prompt, str):
        return [{"role": "user", "content": prompt}]
    if isinstance(prompt, list) and all(isinstance(m, dict) for m in prompt):
        return [{"role": str(m["role"]), "content": str(m["content"])} for m in prompt]
    raise ValueError(f"prompt must be a string or a list of messages, got {type(prompt).__name__}")


def _candidate_text(candidate: Any) -> str:
    if isinstance(candidate, str):
        return candidate
    if isinstance(candidate, dict) and isinstance(candidate.get("content"), str):
        return candidate["content"]
    raise ValueError(f"candidate must be a string or a message dict, got {candidate!r}")


def demo_conversations(rows: Iterable[dict[str, Any]]) -> list[Conversation]:
    """Turn demo prompt rows into chat conversations that end with a helpful assistant turn."""
    conversations: list[Conversation] = []
    for index, row in enumerate(rows):
        if "prompt" not in row:
            raise ValueError(f"row {index} has no 'prompt'")
        messages = _as_messages(row["prompt"])
        candidates = row.get("candidates") or []
        qualities = (row.get("metadata") or {}).get("qualities")
        if qualities is not None and len(qualities) != len(candidates):
            raise ValueError(
                f"row {index}: {len(qualities)} qualities for {len(candidates)} candidates"
            )
        for position, candidate in enumerate(candidates):
            if qualities is not None and qualities[position] != "helpful":
                continue
            text = _candidate_text(candidate).strip()
            if text:
                conversations.append([*messages, {"role": "assistant", "content": text}])
    return conversations


def _check_conversations(conversations: Sequence[Conversation]) -> None:
    if not conversations:
        raise ValueError("need at least one conversation to build a base model")
    for index, conversation in enumerate(conversations):
        if not conversation or not isinstance(conversation, list):
            raise ValueError(f"conversation {index} must be a non-empty list of messages")
        for message in conversation:
            if not isinstance(message, dict) or message.get("role") not in ROLES:
                raise ValueError(f"conversation {index} has a message with an unknown role")
            if not isinstance(message.get("content"), str):
                raise ValueError(f"conversation {index} has a message without text content")
        if conversation[-1]["role"] != "assistant":
            raise ValueError(f"conversation {index} must end with an assistant turn")


def _normalise(conversations: Sequence[Conversation]) -> list[Conversation]:
    # Extra message keys (ids, names) must not change the cache hash or the rendering.
    return [[{"role": m["role"], "content": m["content"]} for m in conv] for conv in conversations]


def _read_marker(out_dir: Path) -> dict[str, Any] | None:
    try:
        return json.loads((out_dir / MARKER_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _is_cached(out_dir: Path, config: BaseModelConfig, data_hash: str) -> bool:
    marker = _read_marker(out_dir)
    return (
        marker is not None
        and marker.get("format_version") == FORMAT_VERSION
        and marker.get("config") == config.to_dict()
        and marker.get("data_hash") == data_hash
        and all((out_dir / name).is_file() for name in ("config.json", "tokenizer.json"))
        and any(out_dir.glob("*.safetensors"))
    )


def _train_tokenizer(conversations: Sequence[Conversation], config: BaseModelConfig):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=config.vocab_size,
        special_tokens=[PAD_TOKEN, BOS_TOKEN, TURN_START, TURN_END],
        # Full byte alphabet so any unseen character still encodes losslessly.
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        min_frequency=2,
        show_progress=False,
    )
    texts = (f"{m['role']}\n{m['content']}" for conv in conversations for m in conv)
    tokenizer.train_from_iterator(texts, trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        bos_token=BOS_TOKEN,
        eos_token=TURN_END,
        pad_token=PAD_TOKEN,
        extra_special_tokens=[TURN_START],
        chat_template=CHAT_TEMPLATE,
        padding_side="left",
        model_max_length=config.max_position,
    )


def _encode(tokenizer, conversations: Sequence[Conversation], max_length: int):
    """Tokenize conversations into (input_ids, labels) with loss only on assistant tokens."""
    examples = []
    for conversation in conversations:
        encoded = tokenizer.apply_chat_template(
            conversation, tokenize=True, return_dict=True, return_assistant_tokens_mask=True
        )
        ids = list(encoded["input_ids"])[:max_length]
        mask = list(encoded["assistant_masks"])[:max_length]
        labels = [tok if keep else -100 for tok, keep in zip(ids, mask, strict=True)]
        if any(label != -100 for label in labels[1:]):
            examples.append((ids, labels))
    return examples


def _batches(examples, batch_size: int, generator) -> list[list[int]]:
    """Shuffle example indices into batches of similar length to limit padding."""
    import torch

    order = torch.randperm(len(examples), generator=generator).tolist()
    window = batch_size * 8
    batches: list[list[int]] = []
    for start in range(0, len(order), window):
        chunk = sorted(order[start : start + window], key=lambda i: len(examples[i][0]))
        batches.extend(chunk[i : i + batch_size] for i in range(0, len(chunk), batch_size))
    permutation = torch.randperm(len(batches), generator=generator).tolist()
    return [batches[i] for i in permutation]


def _collate(examples, indices: list[int], pad_id: int):
    import torch

    longest = max(len(examples[i][0]) for i in indices)
    input_ids = torch.full((len(indices), longest), pad_id, dtype=torch.long)
    labels = torch.full((len(indices), longest), -100, dtype=torch.long)
    attention_mask = torch.zeros((len(indices), longest), dtype=torch.long)
    for row, i in enumerate(indices):
        ids, labs = examples[i]
        input_ids[row, : len(ids)] = torch.tensor(ids)
        labels[row, : len(labs)] = torch.tensor(labs)
        attention_mask[row, : len(ids)] = 1
    return input_ids, attention_mask, labels


def _train_model(tokenizer, examples, config: BaseModelConfig, progress: ProgressFn | None):
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM, get_cosine_schedule_with_warmup

    torch.manual_seed(config.seed)
    model_config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=config.hidden_size,
        intermediate_size=config.intermediate_size,
        num_hidden_layers=config.num_layers,
        num_attention_heads=config.num_heads,
        num_key_value_heads=config.num_heads,
        max_position_embeddings=config.max_position,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=True,
    )
    model = LlamaForCausalLM(model_config)
    model.train()

    steps_per_epoch = math.ceil(len(examples) / config.batch_size)
    if config.max_steps > 0:
        total_steps = config.max_steps
    else:
        total_steps = max(1, math.ceil(config.epochs * steps_per_epoch))
    optimizer = torch.optim.AdamW(
        model.parameters(), lr=config.learning_rate, betas=(0.9, 0.98), weight_decay=0.01
    )
    scheduler = get_cosine_schedule_with_warmup(
        optimizer, num_warmup_steps=max(1, total_steps // 20), num_training_steps=total_steps
    )
    generator = torch.Generator().manual_seed(config.seed)

    step, loss_value, pending = 0, float("nan"), []
    while step < total_steps:
        if not pending:
            pending = _batches(examples, config.batch_size, generator)
        batch = _collate(examples, pending.pop(), tokenizer.pad_token_id)
        input_ids, attention_mask, labels = batch
        loss = model(input_ids=input_ids, attention_mask=attention_mask, labels=labels).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        step += 1
        loss_value = loss.item()
        # Training is ~90% of the wall time; report often enough for a smooth bar.
        if step == total_steps or step % max(1, total_steps // 50) == 0:
            _report(
                progress,
                0.05 + 0.9 * step / total_steps,
                f"training step {step}/{total_steps}, loss {loss_value:.3f}",
            )

    model.eval()
    generation = model.generation_config
    generation.bos_token_id = tokenizer.bos_token_id
    generation.eos_token_id = tokenizer.eos_token_id
    generation.pad_token_id = tokenizer.pad_token_id
    return model, {"steps": total_steps, "final_loss": loss_value}


def _install(tmp_dir: Path, out_dir: Path) -> None:
    """Move a finished build into out_dir, refusing to clobber directories we did not create."""
    if out_dir.exists():
        if any(out_dir.iterdir()) and _read_marker(out_dir) is None:
            raise ValueError(f"{out_dir} exists and does not hold a preflab base model")
        shutil.rmtree(out_dir)
    os.replace(tmp_dir, out_dir)


def build_base_model(
    conversations: Sequence[Conversation],
    out_dir: str | os.PathLike[str],
    config: BaseModelConfig | None = None,
    progress: ProgressFn | None = None,
) -> str:
    """Train a tokenizer and tiny causal LM on chat conversations and save them to out_dir."""
    config = config or BaseModelConfig()
    config.validate()
    _check_conversations(conversations)
    conversations = _normalise(conversations)
    out_path = Path(out_dir).resolve()
    data_hash = json_sha256(conversations)
    if _is_cached(out_path, config, data_hash):
        _report(progress, 1.0, "base model already built")
        return str(out_path)

    started = time.monotonic()
    _report(progress, 0.0, f"training tokenizer on {len(conversations)} conversations")
    tokenizer = _train_tokenizer(conversations, config)
    examples = _encode(tokenizer, conversations, config.max_position)
    if not examples:
        raise ValueError("no conversation has assistant tokens within max_position")
    _report(progress, 0.05, f"tokenizer ready ({len(tokenizer)} tokens); training model")
    model, stats = _train_model(tokenizer, examples, config, progress)

    _report(progress, 0.95, "saving model")
    out_path.parent.mkdir(parents=True, exist_ok=True)
    tmp_dir = Path(tempfile.mkdtemp(prefix=f".{out_path.name}.", dir=out_path.parent))
    try:
        model.save_pretrained(tmp_dir)
        tokenizer.save_pretrained(tmp_dir)
        marker = {
            "format_version": FORMAT_VERSION,
            "config": config.to_dict(),
            "data_hash": data_hash,
            "num_conversations": len(conversations),
            "num_parameters": sum(p.numel() for p in model.parameters()),
            "vocab_size": len(tokenizer),
            "train_seconds": round(time.monotonic() - started, 1),
            **stats,
        }
        # Written last: a directory with a marker is always a complete build.
        (tmp_dir / MARKER_FILE).write_text(canonical_json(marker) + "\n", encoding="utf-8")
        if _is_cached(out_path, config, data_hash):
            shutil.rmtree(tmp_dir)  # a concurrent build of the same thing finished first
        else:
            _install(tmp_dir, out_path)
    except BaseException:
        shutil.rmtree(tmp_dir, ignore_errors=True)
        raise
    _report(progress, 1.0, "base model saved")
    return str(out_path)


def load_policy(
    name_or_path: str | os.PathLike[str],
    *,
    device: str | None = None,
    dtype: Any = None,
    revision: str | None = None,
    trust_remote_code: bool = False,
):
    """Load (model, tokenizer) from a local directory or a hub id, ensuring a pad token."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    name = str(name_or_path)
    if device is None:
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if dtype is None:
        # Half precision on CPU is slow and numerically rough; on GPU use the checkpoint's dtype.
        dtype = torch.float32 if device == "cpu" else "auto"
    tokenizer = AutoTokenizer.from_pretrained(
        name, revision=revision, trust_remote_code=trust_remote_code
    )
    if tokenizer.pad_token is None:
        fallback = tokenizer.eos_token or tokenizer.unk_token
        if fallback is None:
            raise ValueError(f"tokenizer of {name} has no pad, eos or unk token to pad with")
        tokenizer.pad_token = fallback
    model = AutoModelForCausalLM.from_pretrained(
        name, dtype=dtype, revision=revision, trust_remote_code=trust_remote_code
    )
    model.to(device)
    model.eval()
    if model.config.pad_token_id is None:
        model.config.pad_token_id = tokenizer.pad_token_id
    if model.generation_config.pad_token_id is None:
        model.generation_config.pad_token_id = tokenizer.pad_token_id
    return model, tokenizer
