"""Thin Celery tasks: ids in, then a plain function in rlhf.runner does the work."""

from celery import shared_task
from django.conf import settings

from . import runner


@shared_task(
    name="rlhf.tasks.train",
    acks_late=True,
    soft_time_limit=settings.TRAINING_SOFT_TIME_LIMIT,
    time_limit=settings.TRAINING_HARD_TIME_LIMIT,
)
def train(run_id):
    runner.execute_run(run_id)


@shared_task(
    name="rlhf.tasks.generate",
    acks_late=True,
    soft_time_limit=settings.GENERATION_SOFT_TIME_LIMIT,
    time_limit=settings.GENERATION_SOFT_TIME_LIMIT + 300,
)
def generate(job_id):
    runner.execute_generation(job_id)


@shared_task(name="rlhf.tasks.fail_stale_runs")
def fail_stale_runs():
    return runner.fail_stale_runs()


@shared_task(
    name="rlhf.tasks.score_open_items",
    acks_late=True,
    soft_time_limit=settings.GENERATION_SOFT_TIME_LIMIT,
    time_limit=settings.GENERATION_SOFT_TIME_LIMIT + 300,
)
def score_open_items(project_id, version_id):
    return runner.score_open_items(project_id, version_id)


@shared_task(
    name="rlhf.tasks.evaluate",
    acks_late=True,
    soft_time_limit=settings.GENERATION_SOFT_TIME_LIMIT,
    time_limit=settings.GENERATION_SOFT_TIME_LIMIT + 300,
)
def evaluate(evaluation_id):
    runner.execute_evaluation(evaluation_id)
