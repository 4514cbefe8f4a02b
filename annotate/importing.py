"""Prompt import from JSONL or CSV: validate every row first, then write all or nothing."""

import csv
import io
import json
from dataclasses import dataclass, field

from django.db import transaction

from .models import Candidate, Item, Project, Prompt

ROLES = ("system", "user", "assistant")
JSONL_FIELDS = {"id", "prompt", "candidates", "metadata", "split", "gold"}
MAX_CANDIDATES = 8
MAX_ERRORS_SHOWN = 50


class ImportRejected(Exception):
    """The file has errors; nothing was imported."""

    def __init__(self, errors):
        self.errors = errors
        shown = errors[:MAX_ERRORS_SHOWN]
        more = len(errors) - len(shown)
        text = "\n".join(shown) + (f"\n… and {more} more" if more else "")
        super().__init__(text)


@dataclass
class Row:
    line: int
    conversation: list
    candidates: list = field(default_factory=list)
    external_id: str = ""
    metadata: dict = field(default_factory=dict)
    split: str = Prompt.Split.TRAIN
    # Gold answer: groups of candidate indexes (0-based), best first; empty = not gold.
    gold: list = field(default_factory=list)


@dataclass
class ImportResult:
    prompts: int
    candidates: int
    items: int
    gold: int = 0


def _conversation(value):
    """Return the prompt as a list of messages, or raise ValueError saying what is wrong."""
    if isinstance(value, str):
        if not value.strip():
            raise ValueError("'prompt' is empty")
        return [{"role": "user", "content": value}]
    if not isinstance(value, list) or not value:
        raise ValueError("'prompt' must be a non-empty string or a list of {role, content}")
    messages = []
    for i, turn in enumerate(value, 1):
        if not isinstance(turn, dict) or set(turn) - {"role", "content"} or "role" not in turn:
            raise ValueError(f"'prompt' turn {i} must be an object with 'role' and 'content'")
        if turn["role"] not in ROLES:
            raise ValueError(f"'prompt' turn {i} has role {turn['role']!r}; use one of {ROLES}")
        content = turn.get("content")
        if not isinstance(content, str) or not content.strip():
            raise ValueError(f"'prompt' turn {i} has no text in 'content'")
        messages.append({"role": turn["role"], "content": content})
    if messages[-1]["role"] != "user":
        raise ValueError("'prompt' must end with a 'user' turn")
    return messages


def _candidates(value):
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(c, str) for c in value):
        raise ValueError("'candidates' must be a list of strings")
    texts = [c for c in value if c.strip()]
    if len(texts) != len(value):
        raise ValueError("'candidates' has an empty string")
    if len(texts) > MAX_CANDIDATES:
        raise ValueError(f"'candidates' has {len(texts)} entries; at most {MAX_CANDIDATES}")
    return texts


def _gold(value, n_candidates):
    """Return the gold answer as groups of candidate indexes, best first.

    Accepts [1, 0, 2] (a strict order) or [[1], [0, 2]] (groups; a group is a tie).
    """
    if value is None:
        return []
    if n_candidates < 2:
        raise ValueError("'gold' needs at least two 'candidates'")
    if not isinstance(value, list) or not value:
        raise ValueError("'gold' must be a list of candidate indexes, best first")
    groups = [g if isinstance(g, list) else [g] for g in value]
    flat = [i for g in groups for i in g]
    if not all(isinstance(i, int) and not isinstance(i, bool) for i in flat):
        raise ValueError("'gold' must hold candidate indexes (0-based integers)")
    if sorted(flat) != list(range(n_candidates)):
        raise ValueError(
            f"'gold' must name every candidate index 0..{n_candidates - 1} exactly once"
        )
    if len(groups) < 2:
        raise ValueError("'gold' ties every candidate; a gold answer must prefer one")
    return groups


def _decode(data):
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise ImportRejected(
            [f"line {line}: the file is not UTF-8 text (byte 0x{data[exc.start]:02x}); "
             "save it as UTF-8 and try again"]
        ) from None


def parse_jsonl(text):
    rows, errors = [], []
    for number, raw in enumerate(text.splitlines(), 1):
        if not raw.strip():
            continue
        try:
            obj = json.loads(raw)
        except json.JSONDecodeError as exc:
            errors.append(f"line {number}: invalid JSON ({exc.msg} at column {exc.colno})")
            continue
        try:
            if not isinstance(obj, dict):
                raise ValueError("each line must be a JSON object")
            unknown = set(obj) - JSONL_FIELDS
            if unknown:
                raise ValueError(
                    f"unknown field(s) {', '.join(sorted(unknown))}; "
                    f"allowed: {', '.join(sorted(JSONL_FIELDS))}"
                )
            if "prompt" not in obj:
                raise ValueError("missing required field 'prompt'")
            metadata = obj.get("metadata") or {}
            if not isinstance(metadata, dict):
                raise ValueError("'metadata' must be an object")
            ext = obj.get("id", "")
            if not isinstance(ext, str | int):
                raise ValueError("'id' must be a string or a number")
            split = obj.get("split", Prompt.Split.TRAIN)
            if split not in Prompt.Split.values:
                raise ValueError(f"'split' must be one of {Prompt.Split.values}")
            candidates = _candidates(obj.get("candidates"))
            rows.append(
                Row(number, _conversation(obj["prompt"]), candidates, str(ext), metadata, split,
                    _gold(obj.get("gold"), len(candidates)))
            )
        except ValueError as exc:
            errors.append(f"line {number}: {exc}")
    return rows, errors


def parse_csv(text):
    rows, errors = [], []
    reader = csv.DictReader(io.StringIO(text))
    header = reader.fieldnames or []
    if "prompt" not in header:
        raise ImportRejected(["line 1: the CSV header has no 'prompt' column"])
    candidate_cols = sorted(
        (c for c in header if c.startswith("candidate_") and c[10:].isdigit()),
        key=lambda c: int(c[10:]),
    )
    try:
        for record in reader:
            number = reader.line_num
            try:
                if None in record:
                    raise ValueError("more cells than header columns")
                texts = [record[c] for c in candidate_cols if (record[c] or "").strip()]
                rows.append(
                    Row(number, _conversation(record["prompt"] or ""), _candidates(texts),
                        (record.get("id") or "").strip())
                )
            except ValueError as exc:
                errors.append(f"line {number}: {exc}")
    except csv.Error as exc:
        errors.append(f"line {reader.line_num}: malformed CSV ({exc})")
    return rows, errors


def parse_file(name, data):
    """Parse uploaded bytes into rows; raise ImportRejected listing every bad line."""
    text = _decode(data)
    lower = name.lower()
    if lower.endswith(".csv"):
        rows, errors = parse_csv(text)
    elif lower.endswith((".jsonl", ".json", ".ndjson")):
        rows, errors = parse_jsonl(text)
    else:
        raise ImportRejected([f"{name}: unsupported file type; use .jsonl or .csv"])
    seen = {}
    for row in rows:
        if row.external_id:
            if row.external_id in seen:
                errors.append(
                    f"line {row.line}: duplicate id {row.external_id!r} "
                    f"(first on line {seen[row.external_id]})"
                )
            seen.setdefault(row.external_id, row.line)
    if not rows and not errors:
        errors.append(f"{name}: the file has no rows")
    if errors:
        raise ImportRejected(sorted(errors, key=_line_of))
    return rows


def _line_of(message):
    head = message.split(":", 1)[0]
    return int(head[5:]) if head.startswith("line ") and head[5:].isdigit() else 0


def import_rows(project: Project, rows, source="import"):
    """Create prompts, candidates and items for valid rows in one transaction."""
    ids = [r.external_id for r in rows if r.external_id]
    clashes = set(
        Prompt.objects.filter(project=project, external_id__in=ids).values_list(
            "external_id", flat=True
        )
    )
    if clashes:
        raise ImportRejected(
            [f"line {r.line}: id {r.external_id!r} already exists in this project"
             for r in rows if r.external_id in clashes]
        )
    n_candidates = n_items = n_gold = 0
    with transaction.atomic():
        for row in rows:
            prompt = Prompt.objects.create(
                project=project, external_id=row.external_id, conversation=row.conversation,
                metadata=row.metadata, split=row.split, source=source,
            )
            created = Candidate.objects.bulk_create(
                [Candidate(prompt=prompt, text=t, origin=Candidate.Origin.IMPORT)
                 for t in row.candidates]
            )
            n_candidates += len(created)
            if len(created) >= 2:
                gold = [[created[i].pk for i in group] for group in row.gold]
                create_item(project, prompt, created, gold_ranking=gold)
                n_items += 1
                n_gold += bool(gold)
    return ImportResult(len(rows), n_candidates, n_items, n_gold)


def create_item(project, prompt, candidates, gold_ranking=None):
    """Create an item; a gold item (with a known answer) has no slots to fill."""
    if gold_ranking:
        item = Item.objects.create(project=project, prompt=prompt, open_slots=0, is_gold=True,
                                   gold_ranking=gold_ranking)
    else:
        item = Item.objects.create(project=project, prompt=prompt, open_slots=project.overlap)
    item.candidates.set(candidates)
    return item


def import_file(project, name, data, source="import"):
    return import_rows(project, parse_file(name, data), source=source)
