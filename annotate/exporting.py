"""Export a project's preference rows as JSONL, CSV, Parquet or a Hugging Face `datasets` folder.

The rows are annotate.services.preference_rows (TRL conversational: prompt / chosen / rejected
as lists of {role, content}, plus id, prompt_id, weight, source and the raw judgement or
adjudication id). JSONL writes them as they are; Parquet and the `datasets` folder keep the
nested messages (one Arrow table for both, so their schema is the same); CSV flattens prompt,
chosen and rejected into text (see `flatten`) and writes every other key as a column (nested
values as JSON). Values are written as they are: CSV cells are not escaped against
spreadsheet formulas, because this is training data, not a report.

`export(project, fmt, out)` writes to a path or an open stream and returns the row count;
`stream(project, fmt)` yields bytes for a download (the `datasets` folder as a zip).
"""

import csv
import io
import json
import shutil
import tempfile
import zipfile
from pathlib import Path

from .services import preference_rows

FORMATS = ("jsonl", "csv", "parquet", "datasets")
# {format: (content type, file extension)} of a download.
MEDIA = {
    "jsonl": ("application/jsonl; charset=utf-8", "jsonl"),
    "csv": ("text/csv; charset=utf-8", "csv"),
    "parquet": ("application/vnd.apache.parquet", "parquet"),
    "datasets": ("application/zip", "zip"),
}
MESSAGE_COLUMNS = ("prompt", "chosen", "rejected")
BASE_COLUMNS = (*MESSAGE_COLUMNS, "id", "prompt_id", "weight", "source")


def flatten(messages):
    """Messages as one text: a lone message's content, else "role: content" blocks."""
    if len(messages) == 1:
        return messages[0]["content"]
    return "\n\n".join(f"{m['role']}: {m['content']}" for m in messages)


def _columns(rows):
    """Every key of the rows, in order of first appearance, the TRL columns first."""
    columns = dict.fromkeys(BASE_COLUMNS)
    for row in rows:
        columns.update(dict.fromkeys(row))
    return list(columns)


def _arrow_table(rows):
    import pyarrow as pa

    message = pa.list_(pa.struct([("role", pa.string()), ("content", pa.string())]))
    if not rows:
        types = [message] * 3 + [pa.string(), pa.string(), pa.float64(), pa.string()]
        return pa.schema(list(zip(BASE_COLUMNS, types, strict=True))).empty_table()
    columns = _columns(rows)
    # Every row gets every key: pyarrow takes the column names from the first row only.
    return pa.Table.from_pylist([{c: row.get(c) for c in columns} for row in rows])


def _write_jsonl(rows, binary):
    for row in rows:
        binary.write((json.dumps(row, ensure_ascii=False) + "\n").encode())


def _csv_cell(value):
    if value is None:
        return ""
    if isinstance(value, dict | list):
        return json.dumps(value, ensure_ascii=False)
    return value


def _write_csv(rows, binary):
    columns = _columns(rows)
    text = io.TextIOWrapper(binary, encoding="utf-8", newline="", write_through=True)
    try:
        writer = csv.DictWriter(text, fieldnames=columns)
        writer.writeheader()
        for row in rows:
            cells = {c: _csv_cell(row.get(c)) for c in columns}
            for c in MESSAGE_COLUMNS:
                cells[c] = flatten(row[c])
            writer.writerow(cells)
        text.flush()
    finally:
        text.detach()  # leave the caller's stream open


def _write_parquet(rows, binary):
    import pyarrow.parquet as pq

    pq.write_table(_arrow_table(rows), binary)


def _save_datasets(rows, folder):
    from datasets import Dataset

    # One shard at least: a dataset without rows saved in zero shards cannot be loaded.
    kwargs = {} if rows else {"num_shards": 1}
    Dataset(_arrow_table(rows)).save_to_disk(str(folder), **kwargs)


def _write_datasets_zip(rows, binary):
    """The saved `datasets` folder, zipped under one top folder, `preferences/`."""
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "preferences"
        _save_datasets(rows, folder)
        with zipfile.ZipFile(binary, "w", zipfile.ZIP_DEFLATED) as archive:
            for path in sorted(folder.rglob("*")):
                if path.is_file():
                    archive.write(path, path.relative_to(tmp).as_posix())


WRITERS = {
    "jsonl": _write_jsonl,
    "csv": _write_csv,
    "parquet": _write_parquet,
    "datasets": _write_datasets_zip,
}


def _check(fmt):
    if fmt not in FORMATS:
        raise ValueError(f"Unknown export format {fmt!r}; use one of {', '.join(FORMATS)}.")


def _binary(stream):
    """The byte stream under a text stream (sys.stdout), or the stream itself."""
    if isinstance(stream, io.TextIOBase):
        stream.flush()
        return stream.buffer
    return stream


def export(project, fmt, out, annotator_weights=False):
    """Write the project's preference rows in `fmt` to a path or a stream; return how many.

    A path for "datasets" is the folder `save_to_disk` writes (replaced if it exists), unless
    it ends in .zip; a stream for "datasets" receives the zip.
    """
    _check(fmt)
    rows = list(preference_rows(project, annotator_weights=annotator_weights))
    if isinstance(out, str | Path):
        path = Path(out)
        if fmt == "datasets" and path.suffix.lower() != ".zip":
            if path.exists():
                shutil.rmtree(path)
            _save_datasets(rows, path)
            return len(rows)
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("wb") as binary:
            WRITERS[fmt](rows, binary)
        return len(rows)
    binary = _binary(out)
    WRITERS[fmt](rows, binary)
    binary.flush()
    return len(rows)


def stream(project, fmt, annotator_weights=False, chunk_size=1 << 16):
    """Yield the export as bytes (a download); JSONL line by line, the others from a spooled
    temporary file."""
    _check(fmt)
    if fmt == "jsonl":
        for row in preference_rows(project, annotator_weights=annotator_weights):
            yield (json.dumps(row, ensure_ascii=False) + "\n").encode()
        return
    with tempfile.SpooledTemporaryFile(max_size=8 << 20) as spool:
        export(project, fmt, spool, annotator_weights=annotator_weights)
        spool.seek(0)
        while chunk := spool.read(chunk_size):
            yield chunk


def download(project, fmt, annotator_weights=False):
    """The export as a streamed attachment named <slug>-preferences.<extension>."""
    from django.http import StreamingHttpResponse

    content_type, extension = MEDIA[fmt]
    response = StreamingHttpResponse(
        stream(project, fmt, annotator_weights=annotator_weights), content_type=content_type
    )
    response["Content-Disposition"] = (
        f'attachment; filename="{project.slug}-preferences.{extension}"'
    )
    return response
