import json
import os
from pathlib import Path

from django.conf import settings
from django.contrib.auth.models import Group, User
from django.core.management import call_command
from django.core.management.base import BaseCommand
from django.db import transaction

from annotate.importing import import_file
from annotate.models import Project
from annotate.roles import ANNOTATOR, ENGINEER, MANAGER

DEMO_USERS = (("annotator", ANNOTATOR), ("engineer", ENGINEER), ("manager", MANAGER))


class Command(BaseCommand):
    help = "Create the demo users and load the shipped demo project (idempotent)."

    def add_arguments(self, parser):
        parser.add_argument("--skip-model", action="store_true", help="do not build the base model")

    def handle(self, skip_model=False, **options):
        demo = Path(settings.BASE_DIR) / "demo"
        password = settings.PREFLAB_DEMO_PASSWORD
        with transaction.atomic():
            for username, role in DEMO_USERS:
                user, _ = User.objects.get_or_create(username=username)
                user.set_password(password)
                user.save()
                user.groups.add(Group.objects.get(name=role))
            meta = json.loads((demo / "project.json").read_text())
            project, created = Project.objects.get_or_create(
                slug=meta["slug"],
                defaults={
                    "name": meta["name"],
                    "description": meta.get("description", ""),
                    "overlap": meta.get("overlap", 1),
                    "judgement_kinds": meta.get("judgement_kinds", ["ranking"]),
                    "lease_seconds": meta.get("lease_seconds", 900),
                    **{k: meta[k] for k in ("gold_rate", "gold_min_judged", "gold_min_accuracy",
                                            "gold_pause", "review_threshold") if k in meta},
                    "guidelines": (demo / "guidelines.md").read_text(),
                },
            )
            if created:
                data = demo / "support_prompts.jsonl"
                result = import_file(project, data.name, data.read_bytes(), source="demo")
                self.stdout.write(
                    f"  loaded demo project: {result.prompts} prompts, {result.items} items"
                )
            else:
                self.stdout.write("  demo project already loaded")
        if not skip_model:
            call_command("bootstrap_base_model", project=project.slug, stdout=self.stdout)
        for username, role in DEMO_USERS:
            self.stdout.write(f"  login: {username:10s} password: {password}   ({role})")
        if os.getenv("PREFLAB_DEMO_PASSWORD") is None:
            self.stdout.write("  (set PREFLAB_DEMO_PASSWORD to choose another password)")
