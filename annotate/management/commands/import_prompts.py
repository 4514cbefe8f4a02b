from pathlib import Path

from django.core.management.base import BaseCommand, CommandError
from django.utils.text import slugify

from annotate.importing import ImportRejected, import_file
from annotate.models import Project


class Command(BaseCommand):
    help = "Import prompts (and optional candidates) from a JSONL or CSV file; all or nothing."

    def add_arguments(self, parser):
        parser.add_argument("slug", help="the project's slug")
        parser.add_argument("file", help="a .jsonl or .csv file")
        parser.add_argument("--create", action="store_true", help="create the project if new")
        parser.add_argument("--name", help="the new project's name (with --create)")

    def handle(self, slug, file, create=False, name=None, **options):
        path = Path(file)
        if not path.is_file():
            raise CommandError(f"{file}: no such file")
        project = Project.objects.filter(slug=slug).first()
        if project is None:
            if not create:
                raise CommandError(f"No project {slug!r}; pass --create to make it.")
            if slugify(slug) != slug:
                raise CommandError(f"{slug!r} is not a valid slug (try {slugify(slug)!r}).")
            project = Project.objects.create(slug=slug, name=name or slug)
        try:
            result = import_file(project, path.name, path.read_bytes())
        except ImportRejected as exc:
            raise CommandError(f"Nothing was imported from {file}:\n{exc}") from None
        self.stdout.write(self.style.SUCCESS(
            f"Imported {result.prompts} prompts, {result.candidates} candidates and "
            f"{result.items} items into {project.slug}."
        ))
