import json
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from annotate.ingestion import InvalidConversation, ingest
from annotate.models import Project


class Command(BaseCommand):
    help = (
        "Ingest production conversations from a JSONL file (one conversation a line), scrubbed "
        "of PII before storing; all or nothing, already stored ids count as duplicates."
    )

    def add_arguments(self, parser):
        parser.add_argument("slug", help="the project's slug")
        parser.add_argument("file", help="a .jsonl file: one conversation object per line")

    def handle(self, slug, file, **options):
        path = Path(file)
        if not path.is_file():
            raise CommandError(f"{file}: no such file")
        project = Project.objects.filter(slug=slug).first()
        if project is None:
            raise CommandError(f"No project {slug!r}.")
        conversations, lines = [], []
        try:
            text = path.read_text(encoding="utf-8-sig")
        except UnicodeDecodeError:
            raise CommandError(f"{file}: not UTF-8 text; nothing was ingested.") from None
        for number, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                conversations.append(json.loads(line))
            except json.JSONDecodeError as exc:
                # The position only: the line itself may hold personal data.
                raise CommandError(
                    f"line {number}: not valid JSON ({exc.msg} at column {exc.colno}); "
                    "nothing was ingested."
                ) from None
            lines.append(number)
        if not conversations:
            raise CommandError(f"{file}: no conversations; nothing was ingested.")
        try:
            result = ingest(project, conversations)
        except InvalidConversation as exc:
            raise CommandError(f"line {lines[exc.index]}: {exc}") from None
        extra = f"; generation job {result['generation_job']}" if "generation_job" in result else ""
        self.stdout.write(self.style.SUCCESS(
            f"Ingested {result['created']} conversations into {project.slug} "
            f"({result['duplicates']} already stored, {result['items']} sent to annotation"
            f"{extra})."
        ))
