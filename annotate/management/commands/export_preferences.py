import sys

from django.core.management.base import BaseCommand, CommandError

from annotate.exporting import FORMATS, export
from annotate.models import Project


class Command(BaseCommand):
    help = (
        "Write preference pairs as TRL conversational rows (prompt, chosen, rejected): JSONL "
        "(default), CSV, Parquet or a Hugging Face datasets folder."
    )

    def add_arguments(self, parser):
        parser.add_argument("slug")
        parser.add_argument(
            "--out", required=True,
            help="output file, or - for stdout; with --format datasets a folder (or a .zip)",
        )
        parser.add_argument("--format", choices=FORMATS, default="jsonl", dest="fmt",
                            help="jsonl (default), csv, parquet or datasets (save_to_disk)")
        parser.add_argument(
            "--annotator-weights", action="store_true",
            help="add each row's annotator reliability weight (gold accuracy or agreement)",
        )

    def handle(self, slug, out, fmt="jsonl", annotator_weights=False, **options):
        project = Project.objects.filter(slug=slug).first()
        if project is None:
            raise CommandError(f"No project {slug!r}.")
        if out == "-" and fmt == "datasets":
            raise CommandError("--format datasets writes a folder or a .zip; give --out a path.")
        count = export(project, fmt, sys.stdout if out == "-" else out,
                       annotator_weights=annotator_weights)
        self.stderr.write(self.style.SUCCESS(f"Wrote {count} preference pairs to {out} ({fmt})."))
