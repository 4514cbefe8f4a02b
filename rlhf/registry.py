"""The model registry's outputs: a generated model card and a version as a streamed zip."""

import os
import zipfile
from pathlib import Path

from .models import ModelVersion, PolicyEvaluation, TrainingRun

CHUNK = 1 << 20


def lineage(version):
    """The version, its parent, its parent's parent... up to the base (at most 50)."""
    chain, node = [], version
    while node is not None and len(chain) < 50:
        chain.append(node)
        node = node.parent
    return chain


def model_card(version: ModelVersion) -> str:
    """A Hugging Face model card (README.md) for a version: lineage, data, method, metrics."""
    from huggingface_hub import ModelCardData

    run = (
        TrainingRun.objects.filter(output_model=version)
        .select_related("snapshot", "base_model", "project").first()
    )
    chain = lineage(version)
    tags = ["preflab", "trl"] + ([run.method] if run else [])
    data = ModelCardData(
        library_name="transformers",
        tags=tags,
        base_model=chain[-1].source if len(chain) > 1 else None,
        pipeline_tag="text-classification" if version.kind == ModelVersion.Kind.REWARD
        else "text-generation",
    )
    lines = [f"---\n{data.to_yaml()}\n---", f"# {version.name}", ""]
    kind = version.get_kind_display().lower()
    project = version.project.name if version.project else "all projects"
    lines += [f"A {kind} trained with [preflab](https://github.com/) for {project}.", ""]
    lines += ["## Lineage", ""]
    lines += [f"{i + 1}. `{v.name}` ({v.get_kind_display()}) — `{v.source}`"
              for i, v in enumerate(chain)]
    lines.append("")
    if run is not None:
        lines += ["## Training", "", f"- Method: {run.get_method_display()} (TRL)",
                  f"- Run: {run.pk}, finished {run.finished_at:%Y-%m-%d %H:%M} UTC"
                  if run.finished_at else f"- Run: {run.pk}",
                  f"- Base model: `{run.base_model.name}`", "", "| Hyper-parameter | Value |",
                  "|---|---|"]
        lines += [f"| {k} | {v} |" for k, v in sorted(run.config.items())]
        lines.append("")
        if run.snapshot is not None:
            s = run.snapshot
            lines += ["## Data", "",
                      f"- Snapshot: {s.get_kind_display()}, sha256 `{s.sha256}`",
                      f"- Rows: {s.rows} ({s.train_rows} train, {s.eval_rows} held out, split "
                      "by prompt)",
                      f"- Filters: {', '.join(f'{k}={v}' for k, v in sorted(s.filters.items()))}",
                      ""]
    if version.metrics:
        lines += ["## Held-out metrics", "", "| Metric | Value |", "|---|---|"]
        lines += [f"| {k} | {v:.4g} |" for k, v in sorted(version.metrics.items())
                  if isinstance(v, int | float)]
        lines.append("")
    evaluations = PolicyEvaluation.objects.filter(
        policy=version, status=PolicyEvaluation.Status.SUCCEEDED,
        judge=PolicyEvaluation.Judge.REWARD,
    ).select_related("baseline", "reward_model")
    if evaluations:
        lines += ["## Win-rate against the parent", "",
                  "| Baseline | Judge | Prompts | Win-rate | 95 % interval |",
                  "|---|---|---|---|---|"]
        for e in evaluations:
            r = e.results
            judge = e.reward_model.name if e.reward_model else "-"
            lines.append(f"| `{e.baseline.name}` | `{judge}` | {r.get('n', 0)} | "
                         f"{r.get('win_rate', 0):.3f} | "
                         f"{r.get('ci_low', 0):.3f}–{r.get('ci_high', 1):.3f} |")
        lines.append("")
    return "\n".join(lines)


class _Sink:
    """A write-only file that hands what was written to a generator (for streaming zips)."""

    def __init__(self):
        self.parts = []
        self.offset = 0

    def write(self, data):
        self.parts.append(bytes(data))
        self.offset += len(data)
        return len(data)

    def tell(self):
        return self.offset

    def flush(self):
        pass

    def take(self):
        data = b"".join(self.parts)
        self.parts.clear()
        return data


def model_zip(version: ModelVersion):
    """Yield a zip of the version's folder (save_pretrained files) with README.md = its card.

    Raises FileNotFoundError at once when the folder is not on this machine (a hub id, or
    files removed), before any byte is sent.
    """
    folder = Path(version.source)
    if not folder.is_dir():
        raise FileNotFoundError(
            f"{version.source} is not a folder on this server (a hub id, or it was removed); "
            "download it from where it lives."
        )
    files = sorted(p for p in folder.rglob("*") if p.is_file() and p.name != "README.md")
    card = model_card(version)

    def stream():
        sink = _Sink()
        # Stored, not deflated: safetensors weights barely compress and zipping them is slow.
        with zipfile.ZipFile(sink, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as z:
            z.writestr("README.md", card)
            yield sink.take()
            for path in files:
                with z.open(str(path.relative_to(folder)), "w", force_zip64=True) as target, \
                        path.open("rb") as source:
                    while chunk := source.read(CHUNK):
                        target.write(chunk)
                        yield sink.take()
                yield sink.take()
        yield sink.take()

    return stream()


def folder_size(path) -> int:
    """Bytes under a folder (for showing what a download weighs)."""
    total = 0
    for root, _dirs, names in os.walk(path):
        total += sum(os.path.getsize(os.path.join(root, n)) for n in names)
    return total
