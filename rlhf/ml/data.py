"""Pure-python helpers for preference rows: prompt keys, train/eval splits and JSONL I/O."""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any


def canonical_json(value: Any) -> str:
    """Serialise a value to JSON deterministically (sorted keys, no whitespace)."""
    return json.dumps(value, sort_keys=True, ensure_ascii=False, separators=(",", ":"))


def json_sha256(value: Any) -> str:
    """Return the sha256 hex digest of a value's canonical JSON."""
    return hashlib.sha256(canonical_json(value).encode("utf-8")).hexdigest()


def prompt_key(messages: Any) -> str:
    """Return the sha256 hex digest of the canonical JSON of a prompt's messages."""
    return json_sha256(messages)


def split_by_prompt(
    rows: Sequence[dict[str, Any]],
    eval_fraction: float,
    seed: int,
    held_out: Iterable[str] = (),
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Split rows into (train, eval) so that no prompt lands in both.

    held_out: prompt keys (see prompt_key) that always go to eval, whatever the fraction (a
    project's evaluation prompts); the fraction picks more among the others.
    """
    if not 0 <= eval_fraction < 1:
        raise ValueError(f"eval_fraction must be in [0, 1), got {eval_fraction}")
    keys = [prompt_key(row["prompt"]) for row in rows]
    forced = set(held_out) & set(keys)
    distinct = sorted(set(keys) - forced)
    # The fraction is of all prompts; forced ones count towards it.
    n_eval = max(0, round((len(distinct) + len(forced)) * eval_fraction) - len(forced))
    if eval_fraction > 0 and not forced and len(distinct) >= 2:
        # Tiny datasets would otherwise round to an empty eval split and report no eval metrics.
        n_eval = min(max(n_eval, 1), len(distinct) - 1)
    # Ranking by a seeded hash (not by shuffling) keeps each prompt's side stable however rows
    # are ordered or appended to.
    ranked = sorted(distinct, key=lambda key: hashlib.sha256(f"{seed}:{key}".encode()).hexdigest())
    eval_keys = set(ranked[:n_eval]) | forced
    train = [row for row, key in zip(rows, keys, strict=True) if key not in eval_keys]
    evaluation = [row for row, key in zip(rows, keys, strict=True) if key in eval_keys]
    return train, evaluation


def read_jsonl(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """Read a JSONL file of objects, skipping blank lines."""
    rows: list[dict[str, Any]] = []
    with open(path, encoding="utf-8") as handle:
        for lineno, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise ValueError(f"{path}:{lineno}: invalid JSON: {exc.msg}") from exc
            if not isinstance(row, dict):
                raise ValueError(
                    f"{path}:{lineno}: expected a JSON object, got {type(row).__name__}"
                )
            rows.append(row)
    return rows


def write_jsonl(path: str | os.PathLike[str], rows: Iterable[dict[str, Any]]) -> None:
    """Write rows as UTF-8 JSONL, replacing the file atomically."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    # A temp file plus rename means readers never see a half-written dataset.
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            for row in rows:
                handle.write(json.dumps(row, ensure_ascii=False) + "\n")
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
