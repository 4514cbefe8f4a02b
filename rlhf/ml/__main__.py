"""Command-line entry point: python -m rlhf.ml {build-base,dpo,reward,generate}."""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence

from .config import DPO_LOSS_TYPES, BaseModelConfig, DPORunConfig, RewardRunConfig, SampleConfig


def _progress_printer():
    started = time.monotonic()
    last = {"at": -1.0}

    def report(fraction: float, message: str) -> None:
        now = time.monotonic() - started
        # Progress arrives every few steps; one line every ~2 s is plenty for a terminal.
        if fraction >= 1.0 or now - last["at"] >= 2.0:
            last["at"] = now
            print(f"[{now:6.1f}s] {fraction:4.0%} {message}", file=sys.stderr, flush=True)

    return report


def _overrides(args: argparse.Namespace, names: Sequence[str]) -> dict:
    return {name: getattr(args, name) for name in names if getattr(args, name) is not None}


def cmd_build_base(args: argparse.Namespace) -> int:
    """Build the demo base model from a prompts JSONL file."""
    from .base_model import build_base_model, demo_conversations
    from .data import read_jsonl

    config = BaseModelConfig.from_dict(_overrides(args, ("epochs", "max_steps", "seed")))
    conversations = demo_conversations(read_jsonl(args.data))
    started = time.monotonic()
    out = build_base_model(conversations, args.out, config, progress=_progress_printer())
    print(
        f"built {out} from {len(conversations)} conversations in {time.monotonic() - started:.1f}s",
        file=sys.stderr,
    )
    print(out)
    return 0


def _train_on_preferences(args: argparse.Namespace, config, train) -> int:
    """Split a JSONL of preference rows by prompt, train, print metrics as JSON lines."""
    from .data import read_jsonl, split_by_prompt

    rows = read_jsonl(args.data)
    train_rows, eval_rows = split_by_prompt(rows, config.eval_fraction, config.seed)
    print(f"{len(train_rows)} train / {len(eval_rows)} eval pairs", file=sys.stderr)

    def on_metrics(step: int, metrics: dict[str, float]) -> None:
        print(json.dumps({"step": step, **metrics}), flush=True)

    result = train(
        config,
        train_rows,
        eval_rows,
        model_path=args.model,
        output_dir=args.out,
        on_metrics=on_metrics,
    )
    print(f"saved {result.output_dir} after {result.steps} steps", file=sys.stderr)
    return 0


TRAINING_FIELDS = (
    "learning_rate",
    "num_train_epochs",
    "max_steps",
    "eval_fraction",
    "per_device_train_batch_size",
    "seed",
    "max_length",
)


def cmd_dpo(args: argparse.Namespace) -> int:
    """Run DPO on a JSONL of conversational preference rows."""
    from .dpo import train

    config = DPORunConfig.from_dict(_overrides(args, ("beta", "loss_type", *TRAINING_FIELDS)))
    return _train_on_preferences(args, config, train)


def cmd_reward(args: argparse.Namespace) -> int:
    """Train a reward model on a JSONL of conversational preference rows."""
    from .reward import train

    config = RewardRunConfig.from_dict(_overrides(args, TRAINING_FIELDS))
    return _train_on_preferences(args, config, train)


def cmd_generate(args: argparse.Namespace) -> int:
    """Sample completions for one or more user prompts."""
    from .generate import generate

    names = ("num_candidates", "max_new_tokens", "temperature", "top_p", "seed")
    config = SampleConfig.from_dict(_overrides(args, names))
    prompts = [[{"role": "user", "content": text}] for text in args.prompt]
    results = generate(args.model, prompts, config)
    if args.json:
        for text, candidates in zip(args.prompt, results, strict=True):
            print(json.dumps({"prompt": text, "candidates": candidates}, ensure_ascii=False))
        return 0
    for text, candidates in zip(args.prompt, results, strict=True):
        print(f"> {text}")
        for index, candidate in enumerate(candidates, start=1):
            print(f"  [{index}] {candidate}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    """Return the argument parser for the rlhf.ml CLI."""
    parser = argparse.ArgumentParser(prog="python -m rlhf.ml", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    build = sub.add_parser("build-base", help="train the tiny demo base model")
    build.add_argument("--data", required=True, help="JSONL of {prompt, candidates, metadata}")
    build.add_argument("--out", required=True, help="directory to save the model into")
    build.add_argument("--epochs", type=float, help="passes over the conversations")
    build.add_argument("--max-steps", type=int, help="optimizer steps (overrides --epochs)")
    build.add_argument("--seed", type=int)
    build.set_defaults(func=cmd_build_base)

    dpo = sub.add_parser("dpo", help="run DPO on preference pairs")
    dpo.add_argument("--data", required=True, help="JSONL of {prompt, chosen, rejected} rows")
    dpo.add_argument("--model", required=True, help="policy directory or hub id")
    dpo.add_argument("--out", required=True, help="directory to save the trained policy into")
    dpo.add_argument("--beta", type=float)
    dpo.add_argument("--lr", dest="learning_rate", type=float)
    dpo.add_argument("--loss-type", choices=DPO_LOSS_TYPES)
    dpo.add_argument("--epochs", dest="num_train_epochs", type=float)
    dpo.add_argument("--max-steps", type=int)
    dpo.add_argument("--eval-fraction", type=float)
    dpo.add_argument("--batch-size", dest="per_device_train_batch_size", type=int)
    dpo.add_argument("--max-length", type=int)
    dpo.add_argument("--seed", type=int)
    dpo.set_defaults(func=cmd_dpo)

    rm = sub.add_parser("reward", help="train a reward model on preference pairs")
    rm.add_argument("--data", required=True, help="JSONL of {prompt, chosen, rejected} rows")
    rm.add_argument("--model", required=True, help="base policy directory or hub id")
    rm.add_argument("--out", required=True, help="directory to save the reward model into")
    rm.add_argument("--lr", dest="learning_rate", type=float)
    rm.add_argument("--epochs", dest="num_train_epochs", type=float)
    rm.add_argument("--max-steps", type=int)
    rm.add_argument("--eval-fraction", type=float)
    rm.add_argument("--batch-size", dest="per_device_train_batch_size", type=int)
    rm.add_argument("--max-length", type=int)
    rm.add_argument("--seed", type=int)
    rm.set_defaults(func=cmd_reward)

    gen = sub.add_parser("generate", help="sample completions for prompts")
    gen.add_argument("--model", required=True, help="policy directory or hub id")
    gen.add_argument("--prompt", required=True, action="append", help="user message (repeatable)")
    gen.add_argument("-n", "--num-candidates", type=int)
    gen.add_argument("--max-new-tokens", type=int)
    gen.add_argument("--temperature", type=float)
    gen.add_argument("--top-p", type=float)
    gen.add_argument("--seed", type=int)
    gen.add_argument("--json", action="store_true", help="print one JSON object per prompt")
    gen.set_defaults(func=cmd_generate)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI and return its exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except (ValueError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
