"""PII scrubber bench: per-type recall/precision/F1 and throughput, preflab vs scrubadub.

Run: .venv/bin/python bench/pii_bench.py   (scrubadub is optional: pip install scrubadub)

Scored on tests/data/pii_labelled.jsonl, all rows and the held-out rows (written after tuning)
on their own. A labelled span is found when a predicted span of the same type covers >= 80 % of
it. scrubadub's default detectors (no spaCy/TextBlob models offline) cover e-mail, phone, card,
URL and US social security numbers (counted as ID); its other filth types are counted as
predictions of type OTHER.
"""

import json
import math
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from annotate.pii import Span, find, format_report, score  # noqa: E402

DATA = ROOT / "tests" / "data" / "pii_labelled.jsonl"
SCRUBADUB_TYPES = {
    "email": "EMAIL", "phone": "PHONE", "credit_card": "CARD", "url": "URL",
    "social_security_number": "ID",
}  # fmt: skip


def scrubadub_finder():
    """Return a find()-like function backed by scrubadub, or None when it is not installed."""
    try:
        import scrubadub
    except ImportError:
        return None
    scrubber = scrubadub.Scrubber()

    def finder(text: str) -> list[Span]:
        return [
            Span(SCRUBADUB_TYPES.get(f.type, "OTHER"), f.beg, f.end)
            for f in scrubber.iter_filth(text)
        ]

    return finder


def throughput(finder, texts: list[str], repeat: int = 5) -> tuple[float, float]:
    """Return (messages/s, MB/s), best of `repeat` passes."""
    size = sum(len(t.encode("utf-8")) for t in texts)
    best = math.inf
    for _ in range(repeat):
        started = time.perf_counter()
        for text in texts:
            finder(text)
        best = min(best, time.perf_counter() - started)
    return len(texts) / best, size / best / 1e6


def main() -> None:
    rows = [json.loads(line) for line in DATA.read_text(encoding="utf-8").splitlines()]
    heldout = [r for r in rows if r.get("split") == "heldout"]
    texts = [r["text"] for r in rows]
    find(texts[0])  # load the gazetteer before timing
    finders = {"preflab": find}
    baseline = scrubadub_finder()
    if baseline is not None:
        import scrubadub

        finders[f"scrubadub {scrubadub.__version__}"] = baseline
    else:
        print("scrubadub not installed: showing preflab only (pip install scrubadub)\n")

    speed = {}
    reports = {}
    for name, finder in finders.items():
        reports[name] = score(rows, finder)
        print(f"== {name}: all {len(rows)} rows")
        print(format_report(reports[name]))
        print(f"== {name}: held-out {len(heldout)} rows")
        print(format_report(score(heldout, finder)))
        speed[name] = throughput(finder, texts)
        print(f"throughput: {speed[name][0]:,.0f} messages/s, {speed[name][1]:.3f} MB/s\n")

    if len(finders) == 2:
        ours, theirs = list(finders)
        print(f"== side by side (F1, all rows): {ours} vs {theirs}")
        for kind, r in reports[ours].items():
            other = reports[theirs].get(kind, {"f1": 0.0})
            print(f"{kind:<8} {r['f1']:.3f} vs {other['f1']:.3f}")
        ratio = speed[ours][0] / speed[theirs][0]
        print(f"speed ratio {ours}/{theirs}: {ratio:.2f}x messages/s")


if __name__ == "__main__":
    main()
