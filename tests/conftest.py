"""Shared fixtures: users per role, a demo-like project, and (on request) real services."""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import pytest  # noqa: E402

from tests import factories  # noqa: E402


@pytest.fixture
def annotator(db):
    return factories.user("alice", "Annotator")


@pytest.fixture
def engineer(db):
    return factories.user("erin", "Engineer")


@pytest.fixture
def manager(db):
    return factories.user("maya", "Manager")


@pytest.fixture
def project(db):
    return factories.project_with_items(n_prompts=6, n_candidates=3)


@pytest.fixture(scope="session")
def redis_url():
    """REDIS_URL when given (CI: the machine's Redis), else a private server for this run."""
    from config.devservices import PrivateRedis

    url = os.getenv("REDIS_URL")
    if url:
        yield url
        return
    with PrivateRedis() as server:
        yield server.url


@pytest.fixture(scope="session")
def tiny_model_dir():
    """Build (once per cache key) a very small causal LM on the demo data, offline."""
    from tests.ml_support import build_tiny_model

    return build_tiny_model()


@pytest.fixture
def celery_worker(transactional_db, redis_url, tmp_path, settings):
    """Run a real Celery worker process against the real Redis and this test's database."""
    from tests.services import CeleryWorker

    settings.PREFLAB_MODELS_DIR = tmp_path / "models"
    settings.MEDIA_ROOT = tmp_path / "media"
    with CeleryWorker(redis_url, tmp_path / "worker.log") as worker:
        yield worker
        # Shown by pytest only when the test failed.
        print(f"--- worker log (tail) ---\n{worker.output()}")
