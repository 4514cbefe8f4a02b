"""PII scrubber: per-type recall/precision on the labelled file, and the scrub contract.

Scoring rule: a labelled span counts as found when a predicted span of the same type covers at
least 80 % of it; a predicted span counts as correct when it covers at least 80 % of a labelled
span of its type (annotate.pii.covers / annotate.pii.score).
"""

import json
import time
from pathlib import Path

import pytest

from annotate.pii import find, format_report, score, scrub, scrub_with_counts

DATA = Path(__file__).resolve().parents[1] / "data" / "pii_labelled.jsonl"
ROWS = [json.loads(line) for line in DATA.read_text(encoding="utf-8").splitlines()]
RECALL_FLOOR = {
    "EMAIL": 0.98, "PHONE": 0.98, "CARD": 0.98, "IBAN": 0.98, "NAME": 0.90, "ID": 0.90, "IP": 0.98,
}  # fmt: skip


@pytest.fixture(scope="module")
def report():
    result = score(ROWS)
    print("\nPII scrubber on", len(ROWS), "labelled messages\n" + format_report(result))
    return result


def test_it_has_a_labelled_file_with_correct_offsets():
    assert len(ROWS) >= 150
    for row in ROWS:
        for span in row["spans"]:
            value = row["text"][span["start"] : span["end"]]
            assert value and value == value.strip()


@pytest.mark.parametrize("kind", sorted(RECALL_FLOOR))
def test_it_finds_enough_of_each_type(report, kind):
    assert report[kind]["recall"] >= RECALL_FLOOR[kind], format_report(report)


def test_it_is_precise_for_every_type(report):
    for kind, r in report.items():
        assert r["precision"] >= 0.95, (kind, format_report(report))


def test_it_replaces_with_typed_placeholders():
    text = (
        "I'm Sarah Johnson, mail sarah.j@gmail.com or call +44 20 7946 0958; "
        "card 4111 1111 1111 1111, IBAN DE89 3704 0044 0532 0130 00, "
        "ship to 221B Baker Street on 2024-03-12 at 10:42, "
        "link https://x.example.com/reset?token=abc123def456ghi789"
    )
    out = scrub(text)
    for placeholder in ["[NAME]", "[EMAIL]", "[PHONE]", "[CARD]", "[IBAN]", "[ADDRESS]", "[DATE]"]:
        assert placeholder in out
    assert "[TIME]" in out and "[URL]" in out


def test_it_scrubs_identity_numbers_card_codes_and_ip_addresses():
    text = (
        "SSN 536-22-8726, passport number X1234567, NI AB123456C, account number 31926819; "
        "card 4111 1111 1111 1111 exp 04/27 cvv 123; logged in from 203.0.113.42 and 2001:db8::1"
    )
    out, counts = scrub_with_counts(text)
    assert out == (
        "SSN [ID], passport number [ID], NI [ID], account number [ID]; "
        "card [CARD] exp [CARD] cvv [CARD]; logged in from [IP] and [IP]"
    )
    assert counts == {"ID": 4, "CARD": 3, "IP": 2}


@pytest.mark.parametrize(
    "text",
    [
        "The form shows 078-05-1120, the number Woolworth's printed on sample cards.",
        "After the update to 1.2.3.4 the app crashes; firmware v10.0.0.1 too.",
        "my account number is in the e-mail you sent",
        "code 404 again, and the 4-digit door code 1234 is unrelated",
        "Expires in 3 days; the exp 3/4 scale is confusing.",
        "It is 10:42:17 now and 300.1.2.3 is no address.",
    ],
)
def test_it_leaves_identifier_look_alikes_alone(text):
    assert "[ID]" not in scrub(text) and "[IP]" not in scrub(text)
    assert "[CARD]" not in scrub(text) and "[PHONE]" not in scrub(text)


def test_it_leaves_text_outside_spans_unchanged_byte_for_byte():
    for row in ROWS:
        text = row["text"]
        spans = find(text)
        out = scrub(text)
        # Put each value back where its placeholder is: only then can it equal the input.
        pos, rebuilt = 0, out
        for span in spans:
            placeholder = f"[{span.type}]"
            at = rebuilt.index(placeholder, pos)
            rebuilt = rebuilt[:at] + text[span.start : span.end] + rebuilt[at + len(placeholder) :]
            pos = span.end
        assert rebuilt == text


def test_it_returns_sorted_non_overlapping_spans():
    for row in ROWS:
        spans = find(row["text"])
        assert all(a.end <= b.start for a, b in zip(spans, spans[1:], strict=False))


def test_it_leaves_no_raw_pii_value_in_the_output():
    for row in ROWS:
        out = scrub(row["text"])
        for span in row["spans"]:
            value = row["text"][span["start"] : span["end"]]
            assert value not in out, (value, out)


def test_it_keeps_luhn_failing_numbers():
    text = "The code 4111 1111 1111 1112 and 1234567812345678 are not cards."
    assert scrub(text) == text


def test_it_keeps_an_invalid_iban():
    text = "Is DE89 3704 0044 0532 0130 01 right? And GB82WEST12345698765433?"
    assert "[IBAN]" not in scrub(text)
    assert "DE89 3704 0044 0532 0130 01" in scrub(text)


@pytest.mark.parametrize(
    "text",
    [
        "Order ORD-2024-55321 is late, ticket #48213.",
        "After updating to v2.3.1 it crashes.",
        "I was charged 1,234.56 EUR.",
        "We usually have a sale in May.",
        "Will the firmware fix it? Mark it resolved. Bill me monthly.",
        "Tracking 9400 1000 0000 0000 0000 00 and SKU-88412-B.",
        "See https://example.com/help for details.",
        "Room 404 had 3 beds and the aspect ratio is 16:9.",
    ],
)
def test_it_leaves_look_alikes_alone(text):
    assert scrub(text) == text


def test_it_scrubs_known_customer_fields():
    text = "ANNA Kowalska wrote: anna.k@example.org, acct AC-99812, and Anna called again."
    out, counts = scrub_with_counts(text, names=["Anna Kowalska", "anna.k@example.org", "AC-99812"])
    assert "Anna" not in out and "ANNA" not in out and "Kowalska" not in out
    assert "AC-99812" not in out and "anna.k@" not in out
    assert counts["NAME"] == 2 and counts["EMAIL"] == 1 and counts["ID"] == 1
    assert out.count("[NAME]") == 2


def test_it_scrubs_a_known_name_part_the_detector_would_miss():
    text = "Zyx was here and zyx again, Qwerty too"
    out, counts = scrub_with_counts(text, names=["Zyx Qwerty"])
    assert out == "[NAME] was here and [NAME] again, [NAME] too"
    assert counts == {"NAME": 3}


def test_it_ignores_one_letter_name_parts():
    out = scrub_with_counts("J said a thing", names=["J Bloggs"])[0]
    assert out == "J said a thing"


def test_it_counts_per_type():
    _, counts = scrub_with_counts("a@b.com, c@d.org, +44 20 7946 0958")
    assert counts == {"EMAIL": 2, "PHONE": 1}


def test_it_is_idempotent():
    for row in ROWS:
        once = scrub(row["text"])
        assert scrub(once) == once


def test_it_handles_the_empty_string():
    assert scrub("") == ""
    assert find("") == []
    assert scrub_with_counts("") == ("", {})


def test_it_scrubs_100_kb_quickly():
    text = "\n".join(row["text"] for row in ROWS)
    text = (text * (100_000 // len(text) + 1))[:100_000]
    started = time.perf_counter()
    out = scrub(text)
    assert time.perf_counter() - started < 30
    assert "[EMAIL]" in out and "sarah.johnson@gmail.com" not in out
