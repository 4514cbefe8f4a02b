"""python manage.py train <slug> --method dpo [--preset demo] [--learning-rate 1e-4 ...]"""

import dataclasses
import time

from django.core.management.base import BaseCommand, CommandError

from annotate.models import Project
from rlhf import services
from rlhf.ml.config import PRESETS, RUN_CONFIGS, option_fields, parse_bool
from rlhf.models import ModelVersion, TrainingRun


def _option(name):
    return "--" + name.replace("_", "-")


def _fields():
    """Every config field of every method, once: name -> (type of its default, help)."""
    return option_fields(RUN_CONFIGS.values())


class Command(BaseCommand):
    help = (
        "Queue a training run for a project (the same checks as the form). Settings not given "
        "come from --preset, else the method's defaults. The worker trains it; --wait follows it."
    )

    def add_arguments(self, parser):
        parser.add_argument("slug", help="The project's slug.")
        parser.add_argument("--method", required=True, choices=sorted(RUN_CONFIGS),
                            help="Training method.")
        parser.add_argument("--preset", help="A preset of the method (see --list-presets).")
        parser.add_argument("--base", help="Base policy version id or name (default: the "
                            "project's current model).")
        parser.add_argument("--wait", action="store_true",
                            help="Follow the run until it finishes; exit 1 unless it succeeded.")
        parser.add_argument("--list-presets", action="store_true",
                            help="Print the method's presets and exit.")
        group = parser.add_argument_group("settings (each method uses its own; see the form)")
        for name, (kind, help_text) in sorted(_fields().items()):
            group.add_argument(_option(name), dest=name, default=None,
                               type=parse_bool if kind is bool else kind, help=help_text)

    def handle(self, *args, **options):
        method = options["method"]
        if options["list_presets"]:
            for key, preset in PRESETS[method].items():
                self.stdout.write(f"{key}: {preset['label']} — {preset['help']}")
            return
        project = Project.objects.filter(slug=options["slug"]).first()
        if project is None:
            raise CommandError(f"No project with slug {options['slug']!r}.")
        config_class = RUN_CONFIGS[method]
        known = {f.name for f in dataclasses.fields(config_class)}
        given = {name: options[name] for name in _fields() if options.get(name) is not None}
        foreign = sorted(set(given) - known)
        if foreign:
            raise CommandError(
                f"{method} runs have no setting(s) {', '.join(_option(n) for n in foreign)}."
            )
        values = {}
        if options["preset"]:
            if options["preset"] not in PRESETS[method]:
                raise CommandError(f"No preset {options['preset']!r} for {method}; choose from "
                                   f"{', '.join(PRESETS[method])}.")
            values.update(PRESETS[method][options["preset"]]["values"])
        values.update(given)
        try:
            config = config_class.from_dict(values)
            run = services.launch_run(project, config, self._base(project, options["base"]))
        except ValueError as exc:  # InvalidRun is a ValueError too
            raise CommandError(str(exc)) from None
        run.refresh_from_db()
        if run.status == TrainingRun.Status.FAILED:
            raise CommandError(f"Run {run.pk} could not be queued: {run.error}")
        self.stdout.write(f"Queued {run} ({method}) for {project.slug}: {run.get_absolute_url()}")
        if options["wait"]:
            self._follow(run)

    def _base(self, project, wanted):
        policies = ModelVersion.objects.filter(kind=ModelVersion.Kind.POLICY)
        if wanted is None:
            if project.current_model is None:
                raise CommandError("The project has no current model; pass --base.")
            return project.current_model
        found = policies.filter(pk=int(wanted)).first() if wanted.isdigit() else None
        found = found or policies.filter(name=wanted).order_by("-created_at").first()
        if found is None:
            raise CommandError(f"No policy version {wanted!r}.")
        return found

    def _follow(self, run):
        last = None
        while True:
            run.refresh_from_db()
            state = (run.status, run.progress_step)
            if state != last:
                last = state
                total = f"/{run.progress_total}" if run.progress_total else ""
                self.stdout.write(f"{run.status} step {run.progress_step}{total}")
            if run.is_finished:
                break
            time.sleep(2)
        if run.status != TrainingRun.Status.SUCCEEDED:
            raise CommandError(f"{run} {run.status}: {run.error}")
        self.stdout.write(f"Registered {run.output_model} with {run.eval_metrics}")
