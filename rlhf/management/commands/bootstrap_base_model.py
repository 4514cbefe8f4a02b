from django.core.management.base import BaseCommand

from annotate.models import Project
from rlhf.services import base_model_source, ensure_base_model


class Command(BaseCommand):
    help = (
        "Register the base policy: PREFLAB_BASE_MODEL (hub id or path) if set, else build the "
        "tiny demo model locally (cached under var/models)."
    )

    def add_arguments(self, parser):
        parser.add_argument("--project", help="make it this project's current model")

    def handle(self, project=None, **options):
        target = Project.objects.get(slug=project) if project else None
        last = [-1]

        def progress(fraction, message):
            percent = int(fraction * 100)
            if percent // 10 != last[0] // 10:
                last[0] = percent
                self.stdout.write(f"  base model: {percent:3d}% {message}")

        self.stdout.write(f"Base model: {base_model_source()}")
        version = ensure_base_model(project=target, progress=progress)
        self.stdout.write(self.style.SUCCESS(f"Registered model version {version.name!r}."))
