import os
import signal
import subprocess
import sys
import time

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError

from config.devservices import PrivateRedis


def _interrupt(signum, frame):
    raise KeyboardInterrupt


class Command(BaseCommand):
    help = (
        "Run the whole app for a demo: migrate, load the demo project and users, build the base "
        "model, start Redis (unless REDIS_URL is set), a Celery worker and the web server. "
        "Ctrl-C stops everything it started."
    )

    def add_arguments(self, parser):
        parser.add_argument("--addr", default="127.0.0.1:8000", help="host:port for the web server")

    def step(self, text):
        self.stdout.write(self.style.MIGRATE_HEADING(f"==> {text}"))

    def handle(self, addr, **options):
        # Ctrl-C and `kill` both stop everything, even when started from a script that ignores
        # SIGINT for background jobs.
        signal.signal(signal.SIGINT, signal.default_int_handler)
        signal.signal(signal.SIGTERM, _interrupt)
        self.step("Migrating the database")
        call_command("migrate", interactive=False, verbosity=0)
        self.step("Loading the demo project, users and base model (first run: about a minute)")
        call_command("setup_demo", stdout=self.stdout)

        env = dict(os.environ, PYTHONUNBUFFERED="1")
        redis = None
        children = []
        try:
            if not os.getenv("REDIS_URL"):
                self.step("Starting a private Redis server")
                redis = PrivateRedis().start()
                env["REDIS_URL"] = redis.url
                self.stdout.write(f"  Redis on {redis.url}")
            else:
                self.stdout.write(f"  Using REDIS_URL={os.environ['REDIS_URL']}")
            self.step("Starting a Celery worker (all queues, concurrency 1) with beat")
            queues = ",".join(
                [settings.QUEUE_DEFAULT, settings.QUEUE_GENERATION, settings.QUEUE_TRAINING]
            )
            children.append(("Celery worker", subprocess.Popen(
                [sys.executable, "-m", "celery", "-A", "config", "worker", "-B",
                 "-Q", queues, "-c", "1", "--loglevel", "INFO",
                 "-s", str(settings.VAR_DIR / "celerybeat-schedule")],
                env=env,
            )))
            self.step(f"Starting the web server on http://{addr}/")
            children.append(("web server", subprocess.Popen(
                [sys.executable, "manage.py", "runserver", addr, "--noreload"],
                env=env, cwd=settings.BASE_DIR,
            )))
            self.stdout.write(self.style.SUCCESS(
                f"\npreflab is running: http://{addr}/  (log in at /accounts/login/)\n"
                f"  annotator / engineer / manager, password: {settings.PREFLAB_DEMO_PASSWORD}\n"
                "Press Ctrl-C to stop.\n"
            ))
            while all(child.poll() is None for _, child in children):
                time.sleep(0.5)
            name, dead = next((n, c) for n, c in children if c.poll() is not None)
            raise CommandError(f"The {name} exited with code {dead.returncode}; stopping.")
        except KeyboardInterrupt:
            self.stdout.write("\nStopping…")
        finally:
            for _, child in children:
                if child.poll() is None:
                    child.send_signal(signal.SIGTERM)
            for _, child in children:
                try:
                    child.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    child.kill()
            if redis is not None:
                redis.stop()
