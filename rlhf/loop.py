"""The continuous loop: new judgements → snapshot → train → evaluate → gate → promote → generate.

Celery beat calls `tick()` every minute; it starts an iteration for every project whose loop
is enabled, not paused and has at least `min_new_judgements` new live judgements since the
last iteration. An iteration is one task on the training queue (`rlhf.tasks.loop_iteration`):
it runs the recipe's training runs and the gate evaluation itself, in that worker, one after
the other (the training queue has concurrency 1, so nothing else trains meanwhile); then it
promotes the new policy only if its win-rate over the current one clears the gate, and queues
generation (and paraphrases) with it on the generation queue.

At most one iteration per project runs at a time: a partial unique constraint on
LoopIteration (one RUNNING row per project) decides, whatever beat, people or the API do.
Every step writes a LoopEvent with its figures: the project's timeline.
"""

import logging

from django.db import IntegrityError, transaction
from django.utils import timezone

from annotate.models import Judgement, Project

from .ml.config import DPORunConfig, KTORunConfig, RewardRunConfig, SampleConfig, SFTRunConfig
from .models import (
    LoopEvent,
    LoopIteration,
    LoopPolicy,
    ModelVersion,
    PolicyEvaluation,
    TrainingRun,
)

log = logging.getLogger(__name__)

# The recipe's steps: (step name in run_settings, config class) in order; the last trains
# the candidate policy.
RECIPES = {
    LoopPolicy.Recipe.REWARD_DPO: [("reward", RewardRunConfig), ("dpo", DPORunConfig)],
    LoopPolicy.Recipe.DPO: [("dpo", DPORunConfig)],
    LoopPolicy.Recipe.SFT: [("sft", SFTRunConfig)],
    LoopPolicy.Recipe.KTO: [("kto", KTORunConfig)],
}


# Timing figures TRL logs beside the eval metrics; the timeline shows the metrics.
SPEED_METRICS = ("_runtime", "_per_second")


# The held-out figures the timeline names first (the rest stay in the event's data).
HEADLINE = ("eval_pairwise_accuracy", "eval_rewards/accuracies", "eval_rewards/margins",
            "eval_margin", "eval_loss")


def _headline(item):
    return HEADLINE.index(item[0]) if item[0] in HEADLINE else len(HEADLINE)


class LoopError(Exception):
    """An iteration cannot go on; the message says why (it is shown on the timeline)."""


def policy_for(project: Project) -> LoopPolicy:
    """The project's loop policy (created disabled on first use)."""
    policy, _ = LoopPolicy.objects.get_or_create(project=project)
    return policy


def live_judgements(project: Project):
    return Judgement.objects.filter(item__project=project, retracted_at__isnull=True)


def new_judgements(policy: LoopPolicy) -> int:
    """Live judgements that arrived since the last iteration's snapshot."""
    return live_judgements(policy.project).filter(pk__gt=policy.last_judgement_id).count()


def event(project, kind, message, iteration=None, user=None, **data):
    """Add a line to the project's timeline."""
    LoopEvent.objects.create(project=project, iteration=iteration, kind=kind,
                             message=message[:500], data=data, user=user)


def running_iteration(project):
    return LoopIteration.objects.filter(project=project,
                                        status=LoopIteration.Status.RUNNING).first()


def recipe_configs(policy: LoopPolicy):
    """Build and validate the recipe's run configs from the policy's run_settings.

    Raises LoopError naming the step and the setting that does not validate.
    """
    configs = []
    for step, config_class in RECIPES[policy.recipe]:
        values = dict((policy.run_settings or {}).get(step, {}))
        try:
            config = config_class.from_dict(values)
            config.validate()
        except (TypeError, ValueError) as exc:
            raise LoopError(f"The {step} settings do not validate: {exc}") from None
        configs.append((step, config))
    return configs


def start_iteration(project: Project, trigger=LoopIteration.Trigger.SCHEDULE, user=None):
    """Write a RUNNING iteration and queue it; None when one is already running.

    A manual trigger starts even below the judgement threshold and while paused (an engineer
    asked for it); the schedule never does.
    """
    from . import tasks

    policy = policy_for(project)
    high_water = live_judgements(project).order_by("-pk").values_list("pk", flat=True).first()
    high_water = high_water or 0
    counted = live_judgements(project).filter(pk__gt=policy.last_judgement_id,
                                              pk__lte=high_water).count()
    try:
        with transaction.atomic():
            iteration = LoopIteration.objects.create(
                project=project, trigger=trigger, recipe=policy.recipe, created_by=user,
                baseline=project.current_model, gate=policy.gate_win_rate,
                new_judgements=counted, judgement_high_water=high_water,
            )
    except IntegrityError:
        return None
    how = iteration.get_trigger_display().lower()
    event(project, "started", f"Iteration {iteration.pk} started ({how}): "
          f"{iteration.new_judgements} new judgements, recipe {policy.get_recipe_display()}",
          iteration, user,
          new_judgements=iteration.new_judgements, recipe=policy.recipe)
    transaction.on_commit(lambda: _enqueue_iteration(tasks.loop_iteration, iteration.pk))
    return iteration


def _enqueue_iteration(task, iteration_id):
    try:
        task.apply_async(args=[iteration_id], retry=True)
    except Exception as exc:  # kombu raises several connection error types
        log.exception("could not enqueue loop iteration %s", iteration_id)
        _fail(iteration_id, f"The task queue is unreachable ({exc.__class__.__name__}); start "
              "Redis and the worker, then trigger the loop again.")


def tick():
    """Start an iteration for every enabled, unpaused project with enough new judgements."""
    started = []
    policies = LoopPolicy.objects.filter(enabled=True, paused=False).select_related("project")
    for policy in policies:
        if running_iteration(policy.project) is not None:
            continue
        if new_judgements(policy) < policy.min_new_judgements:
            continue
        iteration = start_iteration(policy.project)
        if iteration is not None:
            started.append(iteration.pk)
    return started


def pause(project, reason, user=None):
    from .webhooks import emit

    policy = policy_for(project)
    LoopPolicy.objects.filter(pk=policy.pk).update(paused=True, paused_reason=reason[:300],
                                                   updated_at=timezone.now())
    event(project, "paused", f"Loop paused: {reason}", user=user, reason=reason)
    emit(project, "loop.paused", {"reason": reason, "by": user.username if user else None})


def resume(project, user=None):
    policy = policy_for(project)
    LoopPolicy.objects.filter(pk=policy.pk).update(paused=False, paused_reason="",
                                                   updated_at=timezone.now())
    event(project, "resumed", "Loop resumed", user=user)


def rollback(project, version: ModelVersion, user=None):
    """Make an earlier policy version current again."""
    from .services import InvalidRun, promote

    previous = project.current_model
    if version.kind != ModelVersion.Kind.POLICY:
        raise InvalidRun(f"{version} is not a policy")
    if version.pk == project.current_model_id:
        raise InvalidRun(f"{version} is already the current model")
    promote(project, version)
    event(project, "rolled_back", f"Current model rolled back from {previous} to {version}",
          user=user, version=version.pk, previous=previous.pk if previous else None)


def _fail(iteration_id, reason):
    updated = LoopIteration.objects.filter(
        pk=iteration_id, status=LoopIteration.Status.RUNNING
    ).update(status=LoopIteration.Status.FAILED, error=reason, finished_at=timezone.now())
    if updated:
        iteration = LoopIteration.objects.get(pk=iteration_id)
        event(iteration.project, "failed", f"Iteration {iteration_id} failed: {reason}",
              iteration)
    return updated


def _stage(iteration, stage):
    LoopIteration.objects.filter(pk=iteration.pk).update(stage=stage)
    iteration.stage = stage


def run_iteration(iteration_id):
    """Execute one iteration to the end; it always finishes PROMOTED, REFUSED or FAILED.

    A redelivered message (the worker died mid-iteration) finds the iteration already
    claimed and fails it with that reason rather than training twice.
    """
    with transaction.atomic():
        iteration = (LoopIteration.objects.select_for_update()
                     .select_related("project").filter(pk=iteration_id).first())
        if iteration is None or iteration.status != LoopIteration.Status.RUNNING:
            return
        if iteration.stage:
            claimed = iteration.stage
            iteration = None
        else:
            LoopIteration.objects.filter(pk=iteration_id).update(stage="claimed")
    if iteration is None:
        _fail(iteration_id, f"The worker stopped during '{claimed}' (killed or lost); trigger "
              "the loop again.")
        return
    try:
        _iterate(iteration)
    except LoopError as exc:
        _fail(iteration_id, str(exc))
    except Exception as exc:
        log.exception("loop iteration %s failed", iteration_id)
        _fail(iteration_id, f"{exc.__class__.__name__}: {exc}")


def _train(iteration, step, config, base):
    from . import runner
    from .services import InvalidRun, launch_run

    _stage(iteration, f"training {step}")
    try:
        run = launch_run(iteration.project, config, base, user=iteration.created_by,
                         enqueue=False)
    except InvalidRun as exc:
        raise LoopError(f"The {step} run cannot start: {exc}") from None
    iteration.runs.add(run)
    event(iteration.project, "run_started", f"{run.get_method_display()} run {run.pk} started "
          f"from {base}", iteration, run=run.pk, method=run.method)
    runner.execute_run(run.pk)
    run.refresh_from_db()
    figures = {k: round(v, 4) for k, v in (run.eval_metrics or {}).items()
               if isinstance(v, int | float) and not k.endswith(SPEED_METRICS)}
    if run.status != TrainingRun.Status.SUCCEEDED:
        raise LoopError(f"{run.get_method_display()} run {run.pk} ended {run.status}: "
                        f"{run.error}")
    rows = (f"{run.snapshot.train_rows} train / {run.snapshot.eval_rows} held-out rows"
            if run.snapshot else "")
    event(iteration.project, "run_finished",
          f"{run.get_method_display()} run {run.pk} succeeded: {rows}, "
          f"{run.progress_step} steps" + "".join(
              f", {k} {v}" for k, v in sorted(figures.items(), key=_headline)[:4]),
          iteration, run=run.pk, method=run.method, eval_metrics=figures)
    return run


def _iterate(iteration):
    from . import runner
    from .services import (
        InvalidRun,
        launch_evaluation,
        launch_generation,
        promote,
        prompts_for_generation,
    )

    project = Project.objects.get(pk=iteration.project_id)
    policy = policy_for(project)
    baseline = project.current_model
    if baseline is None:
        raise LoopError("The project has no current model to improve: generate or promote one.")
    LoopIteration.objects.filter(pk=iteration.pk).update(baseline=baseline)
    # This iteration's data ends here; judgements arriving meanwhile count for the next one.
    LoopPolicy.objects.filter(pk=policy.pk).update(
        last_judgement_id=max(policy.last_judgement_id, iteration.judgement_high_water))

    reward_version = None
    candidate = None
    for step, config in recipe_configs(policy):
        if step == "reward":
            run = _train(iteration, step, config, baseline)
            reward_version = run.output_model
        else:
            run = _train(iteration, step, config, baseline)
            candidate = run.output_model
    LoopIteration.objects.filter(pk=iteration.pk).update(candidate=candidate)

    # Gate: the candidate against the current model on held-out prompts.
    judge_model = reward_version or project.reward_model
    if judge_model is None:
        raise LoopError("The gate needs a reward model: use the 'reward model, then DPO' "
                        "recipe or train a reward model first.")
    _stage(iteration, "evaluating")
    try:
        evaluation = launch_evaluation(
            project, candidate, PolicyEvaluation.Judge.REWARD, reward_model=judge_model,
            prompts=policy.eval_prompts, user=iteration.created_by, enqueue=False,
            config=SampleConfig(num_candidates=1, max_new_tokens=64,
                                seed=iteration.pk),
        )
    except InvalidRun as exc:
        raise LoopError(f"The gate evaluation cannot start: {exc}") from None
    LoopIteration.objects.filter(pk=iteration.pk).update(evaluation=evaluation)
    runner.execute_evaluation(evaluation.pk)
    evaluation.refresh_from_db()
    if evaluation.status != PolicyEvaluation.Status.SUCCEEDED:
        raise LoopError(f"The gate evaluation failed: {evaluation.error}")
    results = evaluation.results
    win_rate = results["win_rate"]
    figures = {k: results.get(k) for k in ("win_rate", "ci_low", "ci_high", "wins", "ties",
                                           "losses", "n")}
    event(project, "evaluated",
          f"{candidate} vs {baseline} on {results.get('n', 0)} held-out prompts, judged by "
          f"{judge_model}: win-rate {win_rate:.1%} (95 % CI {results['ci_low']:.1%} - "
          f"{results['ci_high']:.1%}); gate {policy.gate_win_rate:.0%}",
          iteration, evaluation=evaluation.pk, **figures)

    if win_rate < policy.gate_win_rate:
        LoopIteration.objects.filter(pk=iteration.pk).update(
            status=LoopIteration.Status.REFUSED, win_rate=win_rate, stage="",
            finished_at=timezone.now())
        event(project, "refused", f"Gate refused {candidate}: win-rate {win_rate:.1%} < "
              f"{policy.gate_win_rate:.0%}; {baseline} stays current", iteration,
              win_rate=win_rate, gate=policy.gate_win_rate)
        if policy.pause_on_refusal:
            pause(project, f"the gate refused {candidate} (win-rate {win_rate:.1%} < "
                  f"{policy.gate_win_rate:.0%})")
        return

    _stage(iteration, "promoting")
    promote(project, candidate)
    event(project, "promoted", f"Promoted {candidate} (win-rate {win_rate:.1%} >= gate "
          f"{policy.gate_win_rate:.0%}); it replaces {baseline}", iteration,
          version=candidate.pk, previous=baseline.pk, win_rate=win_rate)
    generation = None
    if policy.generate_after:
        prompt_ids = prompts_for_generation(project, policy.generate_prompts)
        if prompt_ids:
            generation = launch_generation(
                project, candidate, SampleConfig(num_candidates=policy.candidates_per_prompt,
                                                 seed=iteration.pk),
                prompt_ids, user=iteration.created_by)
            event(project, "generation_queued", f"Generation job {generation.pk} queued: "
                  f"{policy.candidates_per_prompt} candidates for {len(prompt_ids)} prompts "
                  f"from {candidate}", iteration, generation=generation.pk,
                  prompts=len(prompt_ids))
    if policy.augment:
        _augment(iteration, project, policy, candidate)
    LoopIteration.objects.filter(pk=iteration.pk).update(
        status=LoopIteration.Status.PROMOTED, win_rate=win_rate, stage="",
        generation=generation, finished_at=timezone.now())


def _augment(iteration, project, policy, version):
    from .services import launch_augmentation, prompts_for_generation

    # launch_augmentation keeps the train prompts that are not paraphrases themselves.
    prompt_ids = launch_augmentation(project, version,
                                     prompts_for_generation(project, policy.generate_prompts),
                                     policy.paraphrases_per_prompt)
    if prompt_ids:
        event(project, "augmentation_queued", f"Paraphrases of {len(prompt_ids)} train prompts "
              f"queued ({policy.paraphrases_per_prompt} each) from {version}", iteration,
              prompts=len(prompt_ids))


def fail_stale_iterations():
    """Fail RUNNING iterations whose training run the heartbeat sweep failed (a worker lost
    at any other stage is caught when its message is redelivered: see run_iteration); the
    constraint then lets the next iteration start."""
    failed = 0
    for iteration in LoopIteration.objects.filter(status=LoopIteration.Status.RUNNING):
        dead = iteration.runs.filter(status=TrainingRun.Status.FAILED).first()
        if dead is not None:
            failed += _fail(iteration.pk, f"Run {dead.pk} failed: {dead.error}")
    return failed
