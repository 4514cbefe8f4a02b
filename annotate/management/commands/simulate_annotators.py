from django.core.management.base import BaseCommand, CommandError

from annotate.models import Project
from annotate.simulation import DEFAULT_ORACLE, ORACLES, simulate, summary_lines


class Command(BaseCommand):
    help = (
        "Judge a project's open items with simulated annotators (an oracle preference plus "
        "noise) through the same claim and submit code as humans."
    )

    def add_arguments(self, parser):
        parser.add_argument("slug", help="the project's slug")
        parser.add_argument("--annotators", type=int, default=5,
                            help="how many simulated annotators (users sim-1..sim-N)")
        parser.add_argument("--noise", type=float, default=0.2,
                            help="probability that an answer is random, 0-1")
        parser.add_argument("--noise-spread", type=float, default=0.0,
                            help="spread noise levels evenly over noise ± this")
        parser.add_argument(
            "--oracle", default=DEFAULT_ORACLE, choices=sorted(ORACLES),
            help="; ".join(f"{name}: {o.description}" for name, o in sorted(ORACLES.items())),
        )
        parser.add_argument("--max-items", type=int, help="stop after this many judgements")
        parser.add_argument("--seed", type=int, default=0, help="random seed")

    def handle(self, slug, annotators=5, noise=0.2, noise_spread=0.0, oracle=DEFAULT_ORACLE,
               max_items=None, seed=0, **options):
        project = Project.objects.filter(slug=slug).first()
        if project is None:
            raise CommandError(f"No project {slug!r}.")
        if not 0.0 <= noise <= 1.0:
            raise CommandError(f"--noise must be between 0 and 1, not {noise}.")
        if noise_spread < 0:
            raise CommandError(f"--noise-spread must not be negative, not {noise_spread}.")
        if annotators < 1:
            raise CommandError("--annotators must be at least 1.")
        if max_items is not None and max_items < 0:
            raise CommandError("--max-items must not be negative.")
        self.stdout.write(
            f"Simulating {annotators} annotators on {project.slug} with oracle {oracle!r} "
            f"({ORACLES[oracle].description}), noise {noise}"
            + (f" ± {noise_spread}" if noise_spread else "") + "."
        )

        def progress(result, username):
            if result.judgements % 50 == 0:
                self.stdout.write(f"  {result.judgements} judgements…")

        result = simulate(project, annotators=annotators, noise=noise, oracle=oracle,
                          max_items=max_items, seed=seed, noise_spread=noise_spread,
                          progress=progress)
        first, *rest = summary_lines(result)
        self.stdout.write(self.style.SUCCESS(first))
        for line in rest:
            self.stdout.write(line)
