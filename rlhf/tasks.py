"""Thin Celery tasks: ids in, then a plain function in rlhf.runner does the work."""

from celery import shared_task
from django.conf import settings

from . import runner, webhooks


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


@shared_task(
    name="rlhf.tasks.augment",
    acks_late=True,
    soft_time_limit=settings.GENERATION_SOFT_TIME_LIMIT,
    time_limit=settings.GENERATION_SOFT_TIME_LIMIT + 300,
)
def augment(project_id, version_id, prompt_ids, per_prompt=1, seed=0):
    from . import augment as augmentation

    return augmentation.run_augmentation(project_id, version_id, prompt_ids, per_prompt, seed)


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


@shared_task(
    name="rlhf.tasks.loop_iteration",
    acks_late=True,
    # An iteration trains every run of its recipe, then evaluates: several runs' worth.
    soft_time_limit=settings.LOOP_SOFT_TIME_LIMIT,
    time_limit=settings.LOOP_HARD_TIME_LIMIT,
)
def loop_iteration(iteration_id):
    from . import loop

    loop.run_iteration(iteration_id)


@shared_task(name="rlhf.tasks.loop_tick")
def loop_tick():
    from . import loop

    loop.fail_stale_iterations()
    return loop.tick()


@shared_task(
    name="rlhf.tasks.deliver_webhook",
    bind=True,
    acks_late=True,
    autoretry_for=(webhooks.DeliveryFailed,),
    # MAX_ATTEMPTS in all; the waits grow 10 s, 20 s, 40 s, 80 s (jittered), capped at 10 min.
    max_retries=webhooks.MAX_ATTEMPTS - 1,
    retry_backoff=10,
    retry_backoff_max=600,
    soft_time_limit=60,
    time_limit=90,
)
def deliver_webhook(self, delivery_id):
    try:
        webhooks.deliver(delivery_id)
    except webhooks.DeliveryFailed as exc:
        if self.request.retries >= self.max_retries:
            webhooks.give_up(delivery_id, exc)
            return
        raise
