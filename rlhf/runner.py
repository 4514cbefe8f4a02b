"""What the worker does for a run, a generation job or a scoring pass: load rows, call rlhf.ml."""

import logging
import shutil
import time
import traceback
from collections import deque
from datetime import timedelta
from itertools import islice
from pathlib import Path

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from annotate.importing import create_item
from annotate.ingestion import PRODUCTION
from annotate.models import UNSCORED_MARGIN, Candidate, Conversation, Item, Project, Prompt

from .ml.config import ONLINE_METHODS, RUN_CONFIGS, TRAINER_MODULES, SampleConfig
from .models import DatasetSnapshot, GenerationJob, ModelVersion, RunMetric, TrainingRun

log = logging.getLogger(__name__)

# Reading the cancel flag every step costs a query; once a second is within one step anyway.
CANCEL_POLL_SECONDS = 1.0

# What a run says when its data is empty, per snapshot kind.
NO_DATA = {
    DatasetSnapshot.Kind.PREFERENCE: "No preference pairs to train on yet: annotate some items",
    DatasetSnapshot.Kind.SFT: "No SFT targets yet: they come from corrections, reviewers' "
    "answers and gold answers",
    DatasetSnapshot.Kind.KTO: "No KTO rows yet: they come from ratings, rankings and "
    "corrections",
    DatasetSnapshot.Kind.PROMPTS: "No prompts to train on: import some",
}

# Lines of a run's log kept for its page, and the loggers it collects (at their own levels;
# rlhf's at INFO).
LOG_LINES = 400
LOGGED = ("rlhf", "trl", "transformers", "peft", "accelerate", "datasets")

# Items whose candidates are scored together and written back in one bulk_update.
SCORE_ITEMS_PER_CHUNK = 256


def _claim(model, pk, queued, running, **extra):
    """Move a QUEUED row to RUNNING under a row lock; None if it was not QUEUED (redelivery)."""
    with transaction.atomic():
        row = model.objects.select_for_update().filter(pk=pk).first()
        if row is None or row.status != queued:
            return None
        row.status = running
        for key, value in extra.items():
            setattr(row, key, value)
        row.save()
        return row


class RunLog(logging.Handler):
    """Keeps the last lines logged while a run trains, for its page (written with heartbeats).

    Attached to the training libraries' loggers for the run's duration: a worker child runs
    one task at a time, so what they log meanwhile is the run's.
    """

    def __init__(self, limit=LOG_LINES):
        super().__init__(logging.INFO)
        self.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s",
                                            "%H:%M:%S"))
        self.lines = deque(maxlen=limit)
        self.changed = False

    def emit(self, record):
        try:
            self.lines.append(self.format(record))
            self.changed = True
        except Exception:  # a log line must never break training
            self.handleError(record)

    def text(self):
        self.changed = False
        return "\n".join(self.lines)


class RunReporter:
    """Callbacks for rlhf.ml: store metrics, progress, log and heartbeat; read the cancel flag."""

    def __init__(self, run_id, run_log=None):
        self.run_id = run_id
        self.run_log = run_log
        self._last_poll = 0.0
        self._cancel = False

    def _beat(self, **fields):
        if self.run_log is not None and self.run_log.changed:
            fields["log"] = self.run_log.text()
        TrainingRun.objects.filter(pk=self.run_id).update(heartbeat_at=timezone.now(), **fields)

    def on_metrics(self, step, metrics):
        rows = [RunMetric(run_id=self.run_id, step=step, name=k, value=float(v))
                for k, v in metrics.items()]
        RunMetric.objects.bulk_create(rows, ignore_conflicts=True)
        log.info("step %s: %s", step, " ".join(f"{k}={v:.4g}" for k, v in metrics.items()))
        self._beat()

    def on_progress(self, step, total):
        self._beat(progress_step=step, progress_total=total or 0)

    def should_stop(self):
        now = time.monotonic()
        if not self._cancel and now - self._last_poll >= CANCEL_POLL_SECONDS:
            self._last_poll = now
            self._cancel = TrainingRun.objects.filter(
                pk=self.run_id, cancel_requested=True
            ).exists()
        return self._cancel


def _finish(run_id, status, **fields):
    """Move a RUNNING run to a final status; False if it was no longer RUNNING.

    The stale-heartbeat sweep may have failed a slow run meanwhile: its verdict stands.
    Webhooks subscribed to run.finished hear of it once the transaction commits.
    """
    from .webhooks import run_finished

    finished = bool(TrainingRun.objects.filter(
        pk=run_id, status=TrainingRun.Status.RUNNING
    ).update(status=status, finished_at=timezone.now(), heartbeat_at=timezone.now(), **fields))
    if finished:
        run_finished(run_id)
    return finished


def execute_run(run_id):
    """Train one run end to end; always leaves it SUCCEEDED, FAILED or CANCELLED."""
    now = timezone.now()
    run = _claim(TrainingRun, run_id, TrainingRun.Status.QUEUED, TrainingRun.Status.RUNNING,
                 started_at=now, heartbeat_at=now)
    if run is None:
        log.info("run %s is not queued; skipping (redelivered or cancelled)", run_id)
        return
    run_log = RunLog()
    loggers = [logging.getLogger(name) for name in LOGGED]
    for logger in loggers:
        logger.addHandler(run_log)
    ours = logging.getLogger("rlhf")
    previous_level = ours.level
    ours.setLevel(logging.INFO)
    try:
        _train(run, run_log)
    finally:
        for logger in loggers:
            logger.removeHandler(run_log)
        ours.setLevel(previous_level)
        TrainingRun.objects.filter(pk=run_id).update(log=run_log.text())


def checkpoint_dir(run_id) -> Path:
    """Where a run's trainer keeps its last resumable checkpoint while it trains."""
    return Path(settings.PREFLAB_MODELS_DIR) / "checkpoints" / f"run-{run_id}"


def resume_point(run):
    """The step a retry of this failed run would resume from, or None (start afresh).

    A run leaves a checkpoint when it failed after its first checkpoint_steps (a killed
    worker, an error); finished and cancelled runs remove theirs. The snapshot it trained on
    must still be there: a resumed run sees exactly the same rows.
    """
    from .ml.common import checkpoint_step

    if run.status != TrainingRun.Status.FAILED or run.snapshot_id is None:
        return None
    return checkpoint_step(checkpoint_dir(run.pk))


def _take_over_checkpoint(run):
    """Move the failed run's checkpoint to this run; return its rows (train, held-out)."""
    from .snapshots import load_snapshot

    source = run.resumed_from
    step = resume_point(source) if source else None
    if step is None:
        raise ValueError(f"{source or 'the earlier run'} left no checkpoint to resume from")
    rows = load_snapshot(source.snapshot)
    target = checkpoint_dir(run.pk)
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.rmtree(target, ignore_errors=True)
    checkpoint_dir(source.pk).rename(target)
    TrainingRun.objects.filter(pk=run.pk).update(snapshot=source.snapshot, resumed_at_step=step)
    log.info("resuming %s from step %s of %s (snapshot %s)", run, step, source,
             source.snapshot.sha256[:12])
    return source.snapshot, *rows


def _train(run, run_log):
    import importlib

    from .services import launch_scoring, reward_model_for
    from .snapshots import METHOD_KINDS, build_snapshot

    run_id = run.pk
    log.info("%s of %s started from %s", run, run.project.slug, run.base_model)
    try:
        if run.method not in TRAINER_MODULES:
            raise ValueError(f"Unknown training method {run.method!r}")
        config = RUN_CONFIGS[run.method].from_dict(run.config)
        extra = {}
        if run.method in ONLINE_METHODS:
            reward_model = reward_model_for(run.project, config)
            extra = {"reward_model_path": reward_model.source, "algorithm": run.method}
        kind = METHOD_KINDS[run.method]
        if run.resumed_from_id:
            snapshot, train_rows, eval_rows = _take_over_checkpoint(run)
        else:
            snapshot, train_rows, eval_rows = build_snapshot(run.project, kind, config)
            TrainingRun.objects.filter(pk=run_id).update(snapshot=snapshot)
        if not train_rows:
            raise ValueError(
                f"{NO_DATA[kind]} ({snapshot.rows} rows in the project, "
                f"{len(eval_rows)} held out)."
            )
        trainer = importlib.import_module(f"rlhf.ml.{TRAINER_MODULES[run.method]}")
        output_dir = Path(settings.PREFLAB_MODELS_DIR) / "runs" / f"run-{run_id}"
        log.info("snapshot %s: %s train / %s held-out rows", snapshot.sha256[:12],
                 len(train_rows), len(eval_rows))
        reporter = RunReporter(run_id, run_log)
        result = trainer.train(
            config, train_rows, eval_rows,
            model_path=run.base_model.source,
            output_dir=str(output_dir),
            on_metrics=reporter.on_metrics,
            should_stop=reporter.should_stop,
            on_progress=reporter.on_progress,
            checkpoint_dir=checkpoint_dir(run_id),
            **extra,
        )
        # Only a failed try keeps its checkpoint (for a retry to resume from).
        shutil.rmtree(checkpoint_dir(run_id), ignore_errors=True)
        if result.stopped:
            log.info("cancelled at step %s", result.steps)
            _finish(run_id, TrainingRun.Status.CANCELLED, eval_metrics=result.eval_metrics)
            return
        log.info("finished after %s steps; held-out: %s", result.steps, result.eval_metrics)
        is_reward = run.method == TrainingRun.Method.REWARD
        with transaction.atomic():
            locked = TrainingRun.objects.select_for_update().filter(pk=run_id).first()
            if locked is None or locked.status != TrainingRun.Status.RUNNING:
                log.warning("%s was marked %s while it trained; its model is not registered",
                            run, locked.status if locked else "deleted")
                return
            version = ModelVersion.objects.create(
                project=run.project,
                name=f"{run.project.slug}-{run.method}-run{run_id}",
                kind=ModelVersion.Kind.REWARD if is_reward else ModelVersion.Kind.POLICY,
                source=str(output_dir),
                parent=run.base_model,
                metrics=result.eval_metrics,
            )
            _finish(run_id, TrainingRun.Status.SUCCEEDED, output_model=version,
                    eval_metrics=result.eval_metrics)
            if is_reward:
                # robust: the run has succeeded; a broker hiccup is logged, not a failed run.
                launch_scoring(run.project, version, robust=True)
    except Exception as exc:
        log.exception("run %s failed", run_id)
        _finish(run_id, TrainingRun.Status.FAILED, error=f"{exc.__class__.__name__}: {exc}",
                traceback=traceback.format_exc())


def execute_generation(job_id):
    """Generate candidates for the job's prompts and queue them as new items."""
    job = _claim(GenerationJob, job_id, GenerationJob.Status.QUEUED, GenerationJob.Status.RUNNING)
    if job is None:
        log.info("generation %s is not queued; skipping", job_id)
        return
    try:
        config = SampleConfig.from_dict(job.config)
        prompts = list(Prompt.objects.filter(pk__in=job.prompt_ids).order_by("id"))
        from .ml.generate import generate

        def on_progress(done, total):
            GenerationJob.objects.filter(pk=job_id).update(done=done, total=total)

        def should_stop():
            return GenerationJob.objects.filter(pk=job_id, status="cancelled").exists()

        outputs = generate(
            job.model_version.source, [p.conversation for p in prompts], config,
            on_progress=on_progress, should_stop=should_stop,
        )
        created = 0
        with transaction.atomic():
            for prompt, texts in zip(prompts, outputs, strict=False):
                candidates = Candidate.objects.bulk_create(
                    [Candidate(prompt=prompt, text=t, origin=Candidate.Origin.MODEL,
                               model_version=job.model_version) for t in texts]
                )
                created += len(candidates)
                # A production conversation's reply and agent correction are judged with them.
                production = production_candidates(prompt)
                candidates = production + candidates
                if len(candidates) >= 2:
                    item = create_item(job.project, prompt, candidates)
                    if production:
                        Conversation.objects.filter(prompt=prompt, item__isnull=True).update(
                            item=item
                        )
            GenerationJob.objects.filter(pk=job_id).update(candidates_created=created)
        GenerationJob.objects.filter(pk=job_id).update(
            status=GenerationJob.Status.SUCCEEDED, finished_at=timezone.now()
        )
    except Exception as exc:
        log.exception("generation %s failed", job_id)
        GenerationJob.objects.filter(pk=job_id).update(
            status=GenerationJob.Status.FAILED, finished_at=timezone.now(),
            error=f"{exc.__class__.__name__}: {exc}",
        )


def production_candidates(prompt):
    """The production reply and agent correction an ingested conversation left on a prompt."""
    if prompt.source != PRODUCTION:
        return []
    return list(prompt.candidates.filter(metadata__production=True).order_by("id"))


def _smallest_gap(scores):
    ordered = sorted(scores)
    return min(b - a for a, b in zip(ordered, ordered[1:], strict=False))


def _score_chunk(items, model, tokenizer, batch_size):
    """Set rm_margin on the items that have 2+ candidates; return (items to save, scored)."""
    from .ml.reward import score

    conversations, completions, spans, changed = [], [], [], []
    for item in items:
        texts = [c.text for c in item.candidates.all()]
        if len(texts) < 2:
            if item.rm_margin != UNSCORED_MARGIN:
                item.rm_margin = UNSCORED_MARGIN
                changed.append(item)
            continue
        spans.append((item, len(completions), len(texts)))
        conversations.extend([item.prompt.conversation] * len(texts))
        completions.extend(texts)
    values = score(model, conversations, completions, batch_size, tokenizer=tokenizer)
    for item, start, count in spans:
        item.rm_margin = _smallest_gap(values[start : start + count])
        changed.append(item)
    return changed, len(spans)


def score_open_items(project_id, version_id, batch_size=16):
    """Score open items' candidates with a reward model; store each item's smallest score gap.

    Gold items are skipped; items with fewer than two candidates keep UNSCORED_MARGIN. Returns
    how many items got a margin. Does nothing when the project has since moved to another
    reward model, so a late task cannot overwrite newer margins.
    """
    project = Project.objects.get(pk=project_id)
    version = ModelVersion.objects.get(pk=version_id)
    if version.kind != ModelVersion.Kind.REWARD:
        raise ValueError(f"{version} is a {version.get_kind_display()}, not a reward model")
    if project.reward_model_id != version.pk:
        log.info("project %s now uses reward model %s; not scoring with %s",
                 project.slug, project.reward_model_id, version.pk)
        return 0
    from .ml.reward import load_reward_model

    model, tokenizer = load_reward_model(version.source)
    items = (
        Item.objects.filter(project=project, open_slots__gt=0, is_gold=False)
        .select_related("prompt")
        .prefetch_related("candidates")
        .order_by("id")
        .iterator(chunk_size=SCORE_ITEMS_PER_CHUNK)
    )
    scored = 0
    while chunk := list(islice(items, SCORE_ITEMS_PER_CHUNK)):
        changed, count = _score_chunk(chunk, model, tokenizer, batch_size)
        # Only rm_margin is written, so claims that changed open_slots meanwhile stand.
        Item.objects.bulk_update(changed, ["rm_margin"], batch_size=500)
        scored += count
    log.info("scored %s open items of %s with %s", scored, project.slug, version)
    return scored


def fail_stale_runs(max_age_seconds=None):
    """Mark RUNNING runs whose heartbeat stopped (worker killed) as FAILED with the reason."""
    max_age = settings.PREFLAB_HEARTBEAT_TIMEOUT if max_age_seconds is None else max_age_seconds
    from .webhooks import run_finished

    cutoff = timezone.now() - timedelta(seconds=max_age)
    with transaction.atomic():
        stale = list(TrainingRun.objects.select_for_update().filter(
            status=TrainingRun.Status.RUNNING, heartbeat_at__lt=cutoff
        ).values_list("pk", flat=True))
        failed = TrainingRun.objects.filter(pk__in=stale).update(
            status=TrainingRun.Status.FAILED,
            finished_at=timezone.now(),
            error=f"The worker stopped reporting for over {max_age} s (killed or lost); "
            "launch the run again.",
        )
        for run_id in stale:
            run_finished(run_id)
    return failed


def execute_evaluation(evaluation_id):
    """Answer the held-out prompts with both policies; score them or queue them for people."""
    import random

    from .ml.evaluate import answers, reward_win_rate
    from .models import PolicyEvaluation

    evaluation = _claim(PolicyEvaluation, evaluation_id, PolicyEvaluation.Status.QUEUED,
                        PolicyEvaluation.Status.RUNNING)
    if evaluation is None:
        log.info("evaluation %s is not queued; skipping", evaluation_id)
        return
    try:
        config = SampleConfig.from_dict(evaluation.config)
        prompts = list(Prompt.objects.filter(pk__in=evaluation.prompt_ids).order_by("id"))
        conversations = [p.conversation for p in prompts]

        def on_progress(done, total):
            PolicyEvaluation.objects.filter(pk=evaluation_id).update(done=done, total=total)

        policy, baseline = evaluation.policy, evaluation.baseline
        if evaluation.judge == PolicyEvaluation.Judge.REWARD:
            results = reward_win_rate(policy.source, baseline.source,
                                      evaluation.reward_model.source, conversations, config,
                                      on_progress=on_progress)
            results["prompt_ids"] = [p.pk for p in prompts]
        else:
            mine = answers(policy.source, conversations, config, on_progress)
            theirs = answers(baseline.source, conversations, config)
            rng = random.Random(evaluation_id)
            identical = 0
            with transaction.atomic():
                for prompt, a, b in zip(prompts, mine, theirs, strict=True):
                    if a.strip() == b.strip():
                        identical += 1  # nothing to choose between
                        continue
                    pair = [(a, policy), (b, baseline)]
                    rng.shuffle(pair)  # the first-created candidate is not always the new one
                    candidates = Candidate.objects.bulk_create([
                        Candidate(prompt=prompt, text=text, origin=Candidate.Origin.MODEL,
                                  model_version=version) for text, version in pair
                    ])
                    evaluation.items.add(create_item(evaluation.project, prompt, candidates))
            results = {"identical_answers": identical}
        PolicyEvaluation.objects.filter(pk=evaluation_id).update(
            status=PolicyEvaluation.Status.SUCCEEDED, results=results,
            done=len(prompts), finished_at=timezone.now(),
        )
    except Exception as exc:
        log.exception("evaluation %s failed", evaluation_id)
        PolicyEvaluation.objects.filter(pk=evaluation_id).update(
            status=PolicyEvaluation.Status.FAILED, finished_at=timezone.now(),
            error=f"{exc.__class__.__name__}: {exc}",
        )
