"""Real processes for integration tests: a Celery worker sharing the test database."""

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from django.conf import settings
from django.db import connection

ROOT = Path(__file__).resolve().parent.parent


def test_database_url():
    """Return a DATABASE_URL that points a child process at the test database."""
    params = connection.settings_dict
    if params["ENGINE"].endswith("sqlite3"):
        return f"sqlite:///{params['NAME']}"
    user = params.get("USER") or ""
    password = f":{params['PASSWORD']}" if params.get("PASSWORD") else ""
    auth = f"{user}{password}@" if user else ""
    host = params.get("HOST") or "127.0.0.1"
    port = f":{params['PORT']}" if params.get("PORT") else ""
    return f"postgres://{auth}{host}{port}/{params['NAME']}"


def use_broker(url):
    """Point this process's Celery app at `url`, dropping connections made to the old one."""
    from config.celery import app

    previous = app.conf.broker_url
    app.conf.broker_url = url
    # The app caches a connection pool and a producer pool for the first broker it used; kombu
    # keeps (open) pools per URL globally, so dropping the app's references is enough.
    app._pool = None
    app.amqp._producer_pool = None
    return previous


def wait_for(predicate, timeout, interval=0.2, message="condition"):
    """Poll until predicate() is truthy; fail with `message` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout} s waiting for {message}")


def process_tree(pid):
    """Return pid and the ids of all its descendants (read from /proc; Linux)."""
    children = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            # "pid (comm) state ppid ...": comm may hold spaces and parentheses.
            ppid = int(stat.read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(stat.parent.name))
    tree, todo = [], [pid]
    while todo:
        current = todo.pop()
        tree.append(current)
        todo.extend(children.get(current, []))
    return tree


def _alive(pid):
    """True while pid runs (a zombie, killed but not yet reaped, counts as dead)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X")


class CeleryWorker:
    """`celery worker` as a child process on every preflab queue."""

    def __init__(self, redis_url, log_path):
        self.redis_url = redis_url
        self.log_path = Path(log_path)
        self.process = None

    def __enter__(self):
        # The test process publishes to the same broker the worker consumes from.
        self.previous_broker = use_broker(self.redis_url)
        queues = ",".join([settings.QUEUE_DEFAULT, settings.QUEUE_TRAINING,
                           settings.QUEUE_GENERATION])
        env = dict(
            os.environ,
            DATABASE_URL=test_database_url(),
            REDIS_URL=self.redis_url,
            HF_HUB_OFFLINE="1",
            PYTHONUNBUFFERED="1",
            PREFLAB_MODELS_DIR=str(settings.PREFLAB_MODELS_DIR),
            MEDIA_ROOT=str(settings.MEDIA_ROOT),
        )
        self.log = open(self.log_path, "wb")  # noqa: SIM115
        self.process = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "config", "worker", "-Q", queues,
             "-c", "1", "--pool", "prefork", "--loglevel", "INFO", "-n", "test@%h",
             "--without-gossip", "--without-mingle"],
            cwd=ROOT, env=env, stdout=self.log, stderr=subprocess.STDOUT,
        )
        try:
            wait_for(self._ready, timeout=90, interval=0.3, message="the Celery worker to start")
        except AssertionError:
            self.__exit__(None, None, None)
            raise AssertionError(f"worker did not start:\n{self.output()}") from None
        return self

    def _ready(self):
        if self.process.poll() is not None:
            raise AssertionError(f"worker exited early:\n{self.output()}")
        return b" ready." in self.log_path.read_bytes()

    def output(self):
        return self.log_path.read_text(errors="replace")[-6000:]

    def kill(self, timeout=20):
        """SIGKILL the worker and every process under it at once, as a crashed machine would.

        The worker shares the test's process group, so the tree is walked rather than the
        group signalled; the main process is stopped first so it cannot fork a replacement.
        """
        os.kill(self.process.pid, signal.SIGSTOP)
        tree = process_tree(self.process.pid)
        for pid in tree:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        self.process.wait(timeout=timeout)
        wait_for(lambda: not any(_alive(pid) for pid in tree), timeout,
                 message="the worker's processes to die")
        return tree

    def __exit__(self, *exc):
        use_broker(self.previous_broker)
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.log.close()
