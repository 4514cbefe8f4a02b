"""Command-line entry point, no Django needed.

python -m rlhf.ml {build-base,reward,dpo,grpo,rloo,sft,kto,generate} --help
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence

from .config import (
    APP_ONLY_FIELDS,
    ONLINE_METHODS,
    PRESETS,
    RUN_CONFIGS,
    TRAINER_MODULES,
    BaseModelConfig,
    SampleConfig,
    option_fields,
    parse_bool,
)


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


# Short spellings kept from the first CLI, next to the generated --<setting> options.
ALIASES = {
    "learning_rate": "--lr",
    "num_train_epochs": "--epochs",
    "per_device_train_batch_size": "--batch-size",
}
# What each method's --data file holds, one JSON object per line.
DATA_HELP = {
    "reward": "JSONL of {prompt, chosen, rejected} rows",
    "dpo": "JSONL of {prompt, chosen, rejected} rows",
    "sft": "JSONL of {prompt, completion} rows",
    "kto": "JSONL of {prompt, completion, label} rows (label true: a good answer)",
    "grpo": "JSONL of {prompt} rows (message lists ending with a user turn)",
    "rloo": "JSONL of {prompt} rows (message lists ending with a user turn)",
}
METHOD_HELP = {
    "reward": "train a reward model on preference pairs (trl.RewardTrainer)",
    "dpo": "run DPO on preference pairs (trl.DPOTrainer)",
    "sft": "supervised fine-tuning on prompt-completion rows (trl.SFTTrainer)",
    "kto": "KTO on unpaired good/bad answers (trl.KTOTrainer)",
    "grpo": "online RL scored by a reward model (trl.GRPOTrainer)",
    "rloo": "online RL scored by a reward model (trl.RLOOTrainer)",
}


def cmd_train(args: argparse.Namespace) -> int:
    """Split a JSONL of rows by prompt, train one method, print metrics as JSON lines."""
    import importlib

    from .data import read_jsonl, split_by_prompt

    method = args.method
    values = dict(PRESETS[method][args.preset]["values"]) if args.preset else {}
    values.update(_overrides(args, args.settings))
    config = RUN_CONFIGS[method].from_dict(values)
    rows = read_jsonl(args.data)
    train_rows, eval_rows = split_by_prompt(rows, config.eval_fraction, config.seed)
    print(f"{len(train_rows)} train / {len(eval_rows)} held-out rows", file=sys.stderr)

    def on_metrics(step: int, metrics: dict[str, float]) -> None:
        print(json.dumps({"step": step, **metrics}), flush=True)

    extra = {}
    if method in ONLINE_METHODS:
        extra = {"reward_model_path": args.reward_model, "algorithm": method}
    trainer = importlib.import_module(f"rlhf.ml.{TRAINER_MODULES[method]}")
    result = trainer.train(
        config,
        train_rows,
        eval_rows,
        model_path=args.model,
        output_dir=args.out,
        on_metrics=on_metrics,
        checkpoint_dir=args.checkpoint_dir,
        **extra,
    )
    if args.checkpoint_dir:
        _remove_checkpoints(args.checkpoint_dir)
    print(f"saved {result.output_dir} after {result.steps} steps", file=sys.stderr)
    return 0


def _remove_checkpoints(directory: str) -> None:
    """Once the model is saved its checkpoints are spent: remove the checkpoint-N folders (and
    nothing else of a directory the user named), so that a later run with the same
    --checkpoint-dir starts afresh instead of resuming a finished one."""
    import shutil
    from pathlib import Path

    for folder in Path(directory).glob("checkpoint-*"):
        if folder.is_dir():
            shutil.rmtree(folder)


def _add_train_parser(sub, method: str) -> None:
    parser = sub.add_parser(
        method,
        help=METHOD_HELP[method],
        description=f"{METHOD_HELP[method][0].upper()}{METHOD_HELP[method][1:]}. Settings not "
        "given come from --preset, else the defaults; metrics go to stdout as JSON lines.",
    )
    parser.add_argument("--data", required=True, help=DATA_HELP[method])
    parser.add_argument("--model", required=True, help="policy directory or hub id to start from")
    parser.add_argument("--out", required=True, help="directory to save the trained model into")
    if method in ONLINE_METHODS:
        parser.add_argument("--reward-model", required=True,
                            help="reward-model directory (from the reward command) or hub id")
    parser.add_argument("--preset", choices=sorted(PRESETS[method]),
                        help="; ".join(f"{key}: {p['help']}" for key, p in PRESETS[method].items()))
    parser.add_argument("--checkpoint-dir",
                        help="keep resumable checkpoints here (every --checkpoint-steps): "
                        "after an interruption, the same command resumes from the last one; "
                        "they are removed once the model is saved")
    group = parser.add_argument_group("settings")
    fields = option_fields([RUN_CONFIGS[method]], exclude=APP_ONLY_FIELDS)
    for name, (kind, help_text) in fields.items():
        flags = ["--" + name.replace("_", "-")] + ([ALIASES[name]] if name in ALIASES else [])
        if kind is bool:
            group.add_argument(*flags, dest=name, type=parse_bool, metavar="{true,false}",
                               help=help_text)
        else:
            group.add_argument(*flags, dest=name, type=kind, help=help_text)
    parser.set_defaults(func=cmd_train, method=method, settings=tuple(fields))


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

    for method in RUN_CONFIGS:
        _add_train_parser(sub, method)

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
