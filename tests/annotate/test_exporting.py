"""Preference exports in JSONL, CSV, Parquet and a datasets folder: the same rows every way."""

import io
import json
import uuid
import zipfile

import pytest
from django.core.management import CommandError, call_command
from django.urls import reverse

from annotate import exporting, queue
from annotate.ingestion import ingest
from annotate.services import preference_rows, submit_judgement
from tests import factories


@pytest.fixture
def judged(project, annotator):
    while (a := queue.claim_next(project, annotator)) is not None:
        submit_judgement(annotator, a.pk, ";".join(map(str, a.shown_order)), uuid.uuid4())
    # A multi-turn production conversation with an agent correction: a row with a longer
    # prompt, source "production" and no judgement id.
    ingest(project, [{
        "external_id": "prod-1",
        "messages": [{"role": "user", "content": "My parcel is late."},
                     {"role": "assistant", "content": "Which order?"},
                     {"role": "user", "content": "NW-1, «express», ünïcode"}],
        "reply": "No idea.",
        "feedback": {"thumb": "down", "correction": "It ships today, sorry for the wait."},
    }])
    return project


@pytest.fixture
def rows(judged):
    rows = list(preference_rows(judged))
    assert len(rows) == 19 and rows[-1]["source"] == "production"
    return rows


def load(fmt, path):
    from datasets import load_dataset, load_from_disk

    if fmt == "datasets":
        return load_from_disk(str(path))
    builder = {"jsonl": "json", "csv": "csv", "parquet": "parquet"}[fmt]
    return load_dataset(builder, data_files=str(path), split="train")


def as_text(row):
    """A row as CSV has it: messages flattened, everything else as given."""
    return {k: exporting.flatten(v) if k in exporting.MESSAGE_COLUMNS else v
            for k, v in row.items()}


@pytest.mark.parametrize("fmt", ["jsonl", "parquet", "datasets"])
def test_it_round_trips_the_rows(judged, rows, tmp_path, fmt):
    out = tmp_path / f"prefs.{fmt}"
    assert exporting.export(judged, fmt, out) == len(rows)
    dataset = load(fmt, out)
    assert len(dataset) == len(rows)
    for loaded, row in zip(dataset, rows, strict=True):
        for key in ("prompt", "chosen", "rejected", "id", "prompt_id", "weight", "source"):
            assert loaded[key] == row[key], key
        assert loaded["judgement_id"] == row["judgement_id"]
        assert loaded.get("adjudication_id") == row.get("adjudication_id")


def test_the_csv_has_text_columns_and_the_extra_keys(judged, rows, tmp_path):
    out = tmp_path / "prefs.csv"
    exporting.export(judged, "csv", out)
    dataset = load("csv", out)
    assert dataset.column_names[:7] == ["prompt", "chosen", "rejected", "id", "prompt_id",
                                        "weight", "source"]
    assert "judgement_id" in dataset.column_names
    assert len(dataset) == len(rows)
    for loaded, row in zip(dataset, rows, strict=True):
        want = as_text(row)
        for key in ("prompt", "chosen", "rejected", "id", "prompt_id", "source"):
            assert loaded[key] == want[key], key
        assert loaded["weight"] == pytest.approx(row["weight"])
    assert dataset[-1]["prompt"] == (
        "user: My parcel is late.\n\nassistant: Which order?\n\nuser: NW-1, «express», ünïcode"
    )
    assert dataset[0]["prompt"] == rows[0]["prompt"][0]["content"]


def test_the_datasets_export_to_a_zip_unpacks_to_a_loadable_folder(judged, rows, tmp_path):
    out = tmp_path / "prefs.zip"
    exporting.export(judged, "datasets", out)
    with zipfile.ZipFile(out) as archive:
        assert all(name.startswith("preferences/") for name in archive.namelist())
        archive.extractall(tmp_path / "unzipped")
    dataset = load("datasets", tmp_path / "unzipped" / "preferences")
    assert [r["id"] for r in dataset] == [r["id"] for r in rows]


@pytest.mark.parametrize("fmt", exporting.FORMATS)
def test_an_empty_project_exports_an_empty_loadable_file(db, tmp_path, fmt):
    empty = factories.project_with_items(n_prompts=2)
    out = tmp_path / f"empty.{fmt}"
    assert exporting.export(empty, fmt, out) == 0
    if fmt == "parquet":
        # datasets' parquet reader refuses a file without rows; pyarrow reads it.
        import pyarrow.parquet as pq

        table = pq.read_table(out)
        assert table.num_rows == 0 and {"prompt", "chosen", "rejected"} <= set(
            table.column_names)
    elif fmt == "datasets":
        dataset = load(fmt, out)
        assert len(dataset) == 0 and {"prompt", "chosen", "rejected"} <= set(
            dataset.column_names)
    elif fmt == "jsonl":
        assert out.read_text() == ""


def test_it_writes_to_a_binary_stream(judged, rows):
    buffer = io.BytesIO()
    exporting.export(judged, "jsonl", buffer)
    assert [json.loads(line) for line in buffer.getvalue().splitlines()] == rows


def test_it_refuses_an_unknown_format(judged, tmp_path):
    with pytest.raises(ValueError, match="Unknown export format 'xlsx'"):
        exporting.export(judged, "xlsx", tmp_path / "x")


def test_the_command_keeps_jsonl_as_default(judged, rows, tmp_path):
    out = tmp_path / "prefs.jsonl"
    call_command("export_preferences", judged.slug, "--out", str(out))
    assert [json.loads(line) for line in out.read_text().splitlines()] == rows


@pytest.mark.parametrize("fmt", ["csv", "parquet", "datasets"])
def test_the_command_writes_each_format(judged, rows, tmp_path, fmt):
    out = tmp_path / f"prefs-{fmt}"
    call_command("export_preferences", judged.slug, "--out", str(out), "--format", fmt)
    assert len(load(fmt, out)) == len(rows)


def test_the_command_writes_jsonl_to_stdout(judged, rows, capsys):
    call_command("export_preferences", judged.slug, "--out", "-")
    assert [json.loads(line) for line in capsys.readouterr().out.splitlines()] == rows


def test_the_command_wants_a_path_for_a_datasets_folder(judged):
    with pytest.raises(CommandError, match="give --out a path"):
        call_command("export_preferences", judged.slug, "--out", "-", "--format", "datasets")


@pytest.mark.parametrize("fmt, extension", [("parquet", "parquet"), ("csv", "csv"),
                                            ("datasets", "zip")])
def test_the_download_offers_each_format(client, judged, rows, engineer, tmp_path, fmt,
                                         extension):
    client.force_login(engineer)
    response = client.get(reverse("annotate-export", args=[judged.slug]), {"format": fmt})
    assert response.status_code == 200
    assert response["Content-Disposition"].endswith(f'preferences.{extension}"')
    out = tmp_path / f"download.{extension}"
    out.write_bytes(b"".join(response.streaming_content))
    if fmt == "datasets":
        with zipfile.ZipFile(out) as archive:
            archive.extractall(tmp_path / "unzipped")
        out = tmp_path / "unzipped" / "preferences"
    assert len(load(fmt, out)) == len(rows)


def test_the_download_refuses_an_unknown_format(client, judged, manager):
    client.force_login(manager)
    response = client.get(reverse("annotate-export", args=[judged.slug]), {"format": "xlsx"})
    assert response.status_code == 400


def test_the_download_is_for_engineers_and_managers(client, judged, annotator, manager):
    url = reverse("annotate-export", args=[judged.slug])
    client.force_login(manager)
    assert client.get(url, {"format": "csv"}).status_code == 200
    client.force_login(annotator)
    assert client.get(url, {"format": "csv"}).status_code == 403
    client.logout()
    assert client.get(url, {"format": "csv"}).status_code == 302


def test_the_project_page_offers_the_formats(client, judged, engineer):
    client.force_login(engineer)
    page = client.get(reverse("annotate-project", args=[judged.slug])).content.decode()
    for fmt in exporting.FORMATS:
        assert f'<option value="{fmt}"' in page
