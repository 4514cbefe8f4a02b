import json
import sys

from django.core.management.base import BaseCommand, CommandError

from annotate.models import Project
from annotate.services import preference_rows


class Command(BaseCommand):
    help = "Write preference pairs as TRL conversational JSONL rows (prompt, chosen, rejected)."

    def add_arguments(self, parser):
        parser.add_argument("slug")
        parser.add_argument("--out", required=True, help="output file, or - for stdout")
        parser.add_argument(
            "--annotator-weights", action="store_true",
            help="add each row's annotator reliability weight (gold accuracy or agreement)",
        )

    def handle(self, slug, out, annotator_weights=False, **options):
        project = Project.objects.filter(slug=slug).first()
        if project is None:
            raise CommandError(f"No project {slug!r}.")
        stream = sys.stdout if out == "-" else open(out, "w", encoding="utf-8")  # noqa: SIM115
        count = 0
        try:
            for row in preference_rows(project, annotator_weights=annotator_weights):
                stream.write(json.dumps(row, ensure_ascii=False) + "\n")
                count += 1
        finally:
            if stream is not sys.stdout:
                stream.close()
        self.stderr.write(self.style.SUCCESS(f"Wrote {count} preference pairs to {out}."))
