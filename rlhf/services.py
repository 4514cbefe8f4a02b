"""Writes that touch several models or enqueue work: launching runs, generation and scoring."""

import logging
from pathlib import Path

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from annotate.models import Project

from .ml.config import RUN_CONFIGS, SampleConfig, TrainingConfig
from .models import GenerationJob, ModelVersion, TrainingRun

log = logging.getLogger(__name__)

DEMO_BASE_NAME = "demo-base"


class BrokerUnavailable(Exception):
    """The task queue (Redis) could not be reached; nothing runs until it is back."""


def _enqueue(task, obj_id, model, error_field="error"):
    """Send the task; if the broker is down, mark the row FAILED and say so (never run inline)."""
    try:
        task.apply_async(args=[obj_id], retry=True)
    except Exception as exc:  # kombu raises several connection error types
        log.exception("could not enqueue %s(%s)", task.name, obj_id)
        model.objects.filter(pk=obj_id, status="queued").update(
            status="failed",
            finished_at=timezone.now(),
            **{error_field: f"The task queue is unreachable ({exc.__class__.__name__}: {exc}). "
               "Start Redis and the worker, then launch again."},
        )


def _send_on_commit(task, args, failed, *, robust):
    """Send task(*args) once the transaction commits; BrokerUnavailable saying what `failed`
    when the broker is down (logged only when robust: a worker's own follow-up work must not
    turn its finished job into a failure)."""

    def send():
        try:
            task.apply_async(args=args, retry=True)
        except Exception as exc:  # kombu raises several connection error types
            log.exception("could not enqueue %s%s", task.name, tuple(args))
            raise BrokerUnavailable(
                f"The task queue is unreachable ({exc.__class__.__name__}: {exc}); {failed}. "
                "Start Redis and the worker, then try again."
            ) from exc

    transaction.on_commit(send, robust=robust)


class InvalidRun(ValueError):
    """A run that cannot start; the message says why (nothing was queued)."""


def method_of(config: TrainingConfig) -> str:
    """The training method a config class stands for (its key in RUN_CONFIGS)."""
    for method, config_class in RUN_CONFIGS.items():
        if type(config) is config_class:
            return method
    raise InvalidRun(f"{type(config).__name__} is not a training method's config")


def check_run(project: Project, method: str, config: TrainingConfig, base_model: ModelVersion):
    """Raise InvalidRun unless the run can start: config valid, models fit the method."""
    try:
        config.validate()
    except ValueError as exc:
        raise InvalidRun(str(exc)) from None
    if base_model.kind != ModelVersion.Kind.POLICY:
        raise InvalidRun(f"{base_model} is a {base_model.get_kind_display()}, not a policy")
    if base_model.project_id not in (None, project.pk):
        raise InvalidRun(f"{base_model} belongs to another project")
    if method in ("grpo", "rloo"):
        reward_model_for(project, config)


def reward_model_for(project: Project, config) -> ModelVersion:
    """The reward model an online run is scored by: the config's, else the project's."""
    if config.reward_model:
        version = ModelVersion.objects.filter(
            pk=config.reward_model, kind=ModelVersion.Kind.REWARD
        ).first()
        if version is None or version.project_id not in (None, project.pk):
            raise InvalidRun(
                f"reward_model {config.reward_model} is not a reward model of {project.slug}"
            )
        return version
    if project.reward_model_id is None:
        raise InvalidRun(
            "Online RL needs a reward model: train one (method: reward model) first, or pick "
            "a reward-model version."
        )
    return project.reward_model


def launch_run(project: Project, config: TrainingConfig, base_model: ModelVersion, user=None,
               enqueue=True, resumed_from=None):
    """Validate, write a QUEUED run and enqueue it once the transaction commits.

    The config's class picks the method (see rlhf.ml.config.RUN_CONFIGS); a reward-model run
    then scores the open items for active learning. Raises InvalidRun (nothing queued) when
    the settings or models do not fit. enqueue=False: the caller, already a training-queue
    task (the loop), executes the run itself with rlhf.runner.execute_run. resumed_from: a
    failed run whose checkpoint and snapshot this run continues from (see retry_run).
    """
    from . import tasks

    method = method_of(config)
    check_run(project, method, config, base_model)
    run = TrainingRun.objects.create(
        project=project,
        method=method,
        config=config.to_dict(),
        base_model=base_model,
        created_by=user,
        resumed_from=resumed_from,
    )
    if enqueue:
        transaction.on_commit(lambda: _enqueue(tasks.train, run.pk, TrainingRun))
    return run


def launch_scoring(project: Project, version: ModelVersion, *, robust=False):
    """Make version the project's reward model and enqueue scoring its open items after commit.

    Scoring writes each open item's rm_margin, which "active_learning" ordering sorts by. When
    the broker cannot be reached this raises BrokerUnavailable (at once outside a transaction,
    else on commit) unless robust, when it is only logged: the worker registering a finished
    run must not turn it into a failure.
    """
    from . import tasks

    if version.kind != ModelVersion.Kind.REWARD:
        raise ValueError(f"{version} is not a reward model")
    if version.project_id not in (None, project.pk):
        raise ValueError(f"{version} belongs to another project")
    Project.objects.filter(pk=project.pk).update(reward_model=version)
    project.reward_model = version

    _send_on_commit(tasks.score_open_items, [project.pk, version.pk],
                    f"open items were not re-scored with {version}", robust=robust)


def request_cancel(run: TrainingRun):
    """Cancel a queued run at once; ask a running one to stop at its next step."""
    with transaction.atomic():
        run = TrainingRun.objects.select_for_update().get(pk=run.pk)
        if run.status == TrainingRun.Status.QUEUED:
            run.status = TrainingRun.Status.CANCELLED
            run.finished_at = timezone.now()
            run.cancel_requested = True
            run.save(update_fields=["status", "finished_at", "cancel_requested"])
            from .webhooks import run_finished

            run_finished(run.pk)
        elif run.status == TrainingRun.Status.RUNNING:
            run.cancel_requested = True
            run.save(update_fields=["cancel_requested"])
    return run


def launch_generation(project, model_version, config: SampleConfig, prompt_ids, user=None):
    """Write a QUEUED generation job for the given prompts and enqueue it after commit."""
    from . import tasks

    config.validate()
    job = GenerationJob.objects.create(
        project=project,
        model_version=model_version,
        prompt_ids=list(prompt_ids),
        total=len(prompt_ids),
        config=config.to_dict(),
        created_by=user,
    )
    transaction.on_commit(lambda: _enqueue(tasks.generate, job.pk, GenerationJob))
    return job


def launch_augmentation(project, model_version, prompt_ids, per_prompt=1, *, seed=0,
                        robust=True):
    """Enqueue paraphrasing of train prompts by model_version (rlhf.augment) after commit.

    Returns the prompt ids queued: the given ones that are train, non-augmented prompts of
    the project. When the broker is down, robust (the loop) logs it; otherwise
    BrokerUnavailable is raised (at once outside a transaction, else on commit).
    """
    from . import tasks
    from .augment import eligible

    if model_version.kind != ModelVersion.Kind.POLICY:
        raise InvalidRun(f"{model_version} is a {model_version.get_kind_display()}; only "
                         "policies write paraphrases")
    if model_version.project_id not in (None, project.pk):
        raise InvalidRun(f"{model_version} belongs to another project")
    if not 1 <= per_prompt <= 8:
        raise InvalidRun(f"per_prompt must be between 1 and 8, got {per_prompt}")
    ids = [p.pk for p in eligible(project, prompt_ids)]
    if not ids:
        return []

    _send_on_commit(tasks.augment, [project.pk, model_version.pk, ids, per_prompt, seed],
                    "no paraphrases were queued", robust=robust)
    return ids


def prompts_for_generation(project, limit):
    """Pick train-split prompts with the fewest model candidates first."""
    from django.db.models import Count, Q

    return list(
        project.prompts.filter(split="train")
        .annotate(n_model=Count("candidates", filter=Q(candidates__origin="model")))
        .order_by("n_model", "id")
        .values_list("id", flat=True)[:limit]
    )


def base_model_source():
    """Return what `from_pretrained` should load as the base policy."""
    if settings.PREFLAB_BASE_MODEL:
        return settings.PREFLAB_BASE_MODEL
    return str(Path(settings.PREFLAB_MODELS_DIR) / DEMO_BASE_NAME)


def ensure_base_model(project=None, data_file=None, base_config=None, progress=None):
    """Register the base policy, building the tiny demo model first when none is configured."""
    source = base_model_source()
    if not settings.PREFLAB_BASE_MODEL:
        from .ml.base_model import build_base_model, demo_conversations
        from .ml.data import read_jsonl

        data_file = data_file or Path(settings.BASE_DIR) / "demo" / "support_prompts.jsonl"
        conversations = demo_conversations(read_jsonl(data_file))
        kwargs = {"progress": progress}
        if base_config is not None:
            kwargs["config"] = base_config
        build_base_model(conversations, source, **kwargs)
    name = DEMO_BASE_NAME if not settings.PREFLAB_BASE_MODEL else Path(source).name or source
    # The base model is shared by every project; each project points at its own current one.
    version, _ = ModelVersion.objects.get_or_create(
        project=None, source=source, kind=ModelVersion.Kind.POLICY, parent=None,
        defaults={"name": name},
    )
    if project is not None and project.current_model_id is None:
        project.current_model = version
        project.save(update_fields=["current_model"])
    return version


def promote(project: Project, version: ModelVersion):
    """Make a policy version the project's current generator (new candidates come from it)."""
    if version.kind != ModelVersion.Kind.POLICY:
        raise InvalidRun(f"{version} is a {version.get_kind_display()}; only policies generate")
    if version.project_id not in (None, project.pk):
        raise InvalidRun(f"{version} belongs to another project")
    previous = Project.objects.filter(pk=project.pk).values_list("current_model", flat=True)
    previous = previous.first()
    Project.objects.filter(pk=project.pk).update(current_model=version)
    project.current_model = version
    if previous != version.pk:
        from .webhooks import model_promoted

        model_promoted(project, version, previous)
    return version


def held_out_prompts(project: Project, policy: ModelVersion, limit: int):
    """Prompt ids to evaluate a policy on: the project's evaluation prompts, else the prompts
    its training run held out."""
    from annotate.models import Prompt

    from .snapshots import snapshot_file

    ids = list(
        Prompt.objects.filter(project=project, split=Prompt.Split.EVAL)
        .order_by("id").values_list("id", flat=True)[:limit]
    )
    if ids:
        return ids
    run = TrainingRun.objects.filter(output_model=policy).select_related("snapshot").first()
    if run is None or run.snapshot is None:
        return []
    from .ml.data import read_jsonl

    keys = []
    for row in read_jsonl(snapshot_file(run.snapshot)):
        if row.get("split") == "eval" and row.get("prompt_id") not in keys:
            keys.append(row["prompt_id"])
    prompts = Prompt.objects.filter(project=project)
    by_key = {str(p.external_id or p.pk): p.pk for p in prompts.only("id", "external_id")}
    return [by_key[k] for k in keys if k in by_key][:limit]


def launch_evaluation(project, policy, judge, *, reward_model=None, prompts=50,
                      config: SampleConfig | None = None, user=None, enqueue=True):
    """Queue a win-rate evaluation of policy against its parent on held-out prompts.

    judge "reward": a reward model scores both answers to each prompt (the project's when
    none is given); judge "human": pairwise items for annotators, names hidden.
    """
    from . import tasks
    from .models import PolicyEvaluation

    if policy.kind != ModelVersion.Kind.POLICY or policy.parent_id is None:
        raise InvalidRun(f"{policy} has no parent policy to compare with")
    if policy.project_id not in (None, project.pk):
        raise InvalidRun(f"{policy} belongs to another project")
    if judge == PolicyEvaluation.Judge.REWARD:
        reward_model = reward_model or project.reward_model
        if reward_model is None or reward_model.kind != ModelVersion.Kind.REWARD:
            raise InvalidRun("A reward-model evaluation needs a reward model: train one first.")
    elif judge != PolicyEvaluation.Judge.HUMAN:
        raise InvalidRun(f"Unknown judge {judge!r}")
    config = config or SampleConfig(max_new_tokens=112)
    try:
        config.validate()
    except ValueError as exc:
        raise InvalidRun(str(exc)) from None
    prompt_ids = held_out_prompts(project, policy, prompts)
    if not prompt_ids:
        raise InvalidRun(
            "No held-out prompts: import prompts with \"split\": \"eval\", or evaluate a "
            "policy whose training run held some out."
        )
    evaluation = PolicyEvaluation.objects.create(
        project=project, policy=policy, baseline=policy.parent, judge=judge,
        reward_model=reward_model if judge == PolicyEvaluation.Judge.REWARD else None,
        prompt_ids=prompt_ids, total=len(prompt_ids), config=config.to_dict(), created_by=user,
    )
    if enqueue:
        transaction.on_commit(lambda: _enqueue(tasks.evaluate, evaluation.pk, PolicyEvaluation))
    return evaluation


def human_results(evaluation):
    """Win-rate of the policy in a blind human evaluation, from its items' live judgements.

    Every live judgement counts once: the policy's answer ranked above the parent's is a
    win, below a loss, tied a half.
    """
    from annotate.agreement import pair_order, rank_positions
    from annotate.models import Candidate, Judgement

    from .ml.evaluate import tally

    items = list(evaluation.items.values_list("id", flat=True))
    owner = dict(
        Candidate.objects.filter(items__in=items).values_list("id", "model_version_id")
    )
    outcomes = []
    judgements = Judgement.objects.filter(item_id__in=items, retracted_at__isnull=True)
    for ranking in judgements.values_list("ranking", flat=True):
        ids = [cid for group in ranking for cid in group]
        mine = [cid for cid in ids if owner.get(cid) == evaluation.policy_id]
        theirs = [cid for cid in ids if owner.get(cid) == evaluation.baseline_id]
        if not mine or not theirs:
            continue
        # -1: the policy's answer is ranked first.
        order = pair_order(rank_positions(ranking), mine[0], theirs[0])
        outcomes.append({-1: 1.0, 0: 0.5, 1: 0.0}[order])
    return {**tally(outcomes), "items": len(items)}


def retry_run(run: TrainingRun, user=None):
    """Queue a new run with a finished run's method, settings and base model.

    A failed run that left a checkpoint is resumed from it, on the same snapshot; any other
    run starts afresh on a new snapshot.
    """
    from .runner import resume_point

    if not run.is_finished:
        raise InvalidRun(f"{run} has not finished yet.")
    if run.method not in RUN_CONFIGS:
        raise InvalidRun(f"Unknown training method {run.method!r}")
    try:
        config = RUN_CONFIGS[run.method].from_dict(run.config)
    except ValueError as exc:
        raise InvalidRun(f"{run}'s settings no longer validate: {exc}") from None
    resumed_from = run if resume_point(run) is not None else None
    return launch_run(run.project, config, run.base_model, user=user, resumed_from=resumed_from)
