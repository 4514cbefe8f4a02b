#!/usr/bin/env python
"""Training through the app vs a bare TRL script: the same DPO and reward-model runs, timed.

    .venv/bin/python bench/train_overhead_bench.py [--dpo-steps 30] [--reward-steps 60]
        [--repeats 3] [--batch-size 8] [--max-length 256]

App path: the demo project (demo/support_prompts.jsonl + demo/project.json) is imported and
every item judged by two annotators through annotate.queue.claim_next + submit_judgement, so
preference pairs exist; then each run is `rlhf.services.launch_run(project, config, base)`
and the real Celery task executed in-process, `rlhf.tasks.train.apply(args=[run.pk])`:
claiming the row, building the dataset snapshot, rlhf.ml training with the metrics callback
writing RunMetric rows, progress/heartbeat updates and cancel polling, saving, registering
the model version (and, for a reward model, making it the project's reward model and
enqueuing the scoring of open items). The whole apply() is timed.

Bare path: the rows of that run's snapshot file (its train/eval split) and the same config,
turned into the same TRL config object by rlhf.ml.dpo._dpo_config / rlhf.ml.reward.
_reward_config, go straight into trl.DPOTrainer / trl.RewardTrainer: train, evaluate,
save_pretrained — what a user's plain TRL script does. Timed from loading the tokenizer to
the saved model.

Runs alternate app, bare, app, bare ... (--repeats each, after one short untimed warm-up of
both paths) and the medians are compared: app / bare wall time, target <= 1.05. The
database is a SQLite file in a temporary directory (DATABASE_URL if set; the project is then
created as "bench-train-overhead" and removed again), models and media go to the same
temporary directory, and the broker is Celery's in-memory transport, so nothing outside is
touched. The demo base model (rlhf.ml.base_model, default BaseModelConfig but only
--base-steps training steps: the weights' quality does not change the cost of a step) is
built once into var/cache/train-overhead-bench/. torch runs on --threads 1 by default: on a
shared 2-core machine two threads slow down up to tenfold whenever another process takes a
core, which buries the difference being measured.

Exits 1 if the two paths do not end with the same eval metrics (then they did not train the
same thing); a missed time target is reported, not an error.
"""

import argparse
import contextlib
import importlib
import json
import logging
import os
import resource
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
# Both paths equally: no progress bars or advisory warnings in the output.
os.environ.setdefault("HF_DATASETS_DISABLE_PROGRESS_BARS", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")

SLUG = "bench-train-overhead"
TARGET_RATIO = 1.05
# Same seed, data, config and CPU kernels: the eval metrics should match exactly.
SAME_TOLERANCE = 1e-6
ANNOTATORS = 2
ANNOTATOR_PREFIX = "bench-train-annotator-"
CACHE = ROOT / "var" / "cache" / "train-overhead-bench"


def log(message):
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def cpu_seconds():
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


# -- setup -----------------------------------------------------------------------------------


def setup(workdir, base_steps, threads):
    """Point Django at a private database, media and models directory; build the base model."""
    import torch
    import transformers

    if threads:
        torch.set_num_threads(threads)
    transformers.utils.logging.disable_progress_bar()
    os.environ["PREFLAB_VAR_DIR"] = str(workdir)
    os.environ["MEDIA_ROOT"] = str(workdir / "media")
    os.environ["PREFLAB_MODELS_DIR"] = str(workdir / "models")
    os.environ.setdefault("DATABASE_URL", f"sqlite:///{workdir / 'bench.sqlite3'}")
    # Enqueuing works (launch_run, the reward model's scoring task) without Redis; nothing
    # consumes the messages: the runs are executed below with apply().
    os.environ["CELERY_BROKER_URL"] = "memory://"

    from rlhf.ml.base_model import build_base_model, demo_conversations
    from rlhf.ml.config import BaseModelConfig
    from rlhf.ml.data import read_jsonl

    config = BaseModelConfig(max_steps=base_steps)
    model_dir = CACHE / f"base-{base_steps}-steps"
    started = time.monotonic()
    rows = read_jsonl(ROOT / "demo" / "support_prompts.jsonl")
    build_base_model(demo_conversations(rows), str(model_dir), config=config)
    log(f"base model ready in {time.monotonic() - started:.1f} s: {model_dir}")
    # A configured base model is registered as it is (ensure_base_model builds nothing).
    os.environ["PREFLAB_BASE_MODEL"] = str(model_dir)

    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    # Celery logs every task's "succeeded in ..." line and the runner a line per step; the
    # console shows warnings only. The loggers keep their levels, so the run's own log
    # capture (kept on the TrainingRun row) still gets every line.
    logging.getLogger("celery.app.trace").setLevel(logging.WARNING)
    for handler in logging.getLogger().handlers:
        handler.setLevel(logging.WARNING)
    from django.db import connection

    return connection.vendor, model_dir


def answer_for(project, assignment, quality):
    """Judge like the demo's gold answers: helpful first, then longer answers."""
    from annotate.models import Candidate
    from annotate.services import Answer

    texts = dict(Candidate.objects.filter(id__in=assignment.shown_order)
                 .values_list("id", "text"))

    def key(cid):
        return (quality.get(texts[cid]) == "helpful", len(texts[cid]))

    shown = assignment.shown_order
    if "pairwise" in project.kinds_for(len(shown)):
        a, b = shown
        choice = "tie" if key(a) == key(b) else ("a" if key(a) > key(b) else "b")
        return Answer(pairwise_choice=choice)
    return Answer(ranking=[[cid] for cid in sorted(shown, key=key, reverse=True)])


def demo_project():
    """Import the demo project and judge every item with two annotators; return it."""
    from django.contrib.auth.models import Group, User

    from annotate import queue
    from annotate.importing import import_file
    from annotate.models import Project
    from annotate.roles import ANNOTATOR
    from annotate.services import submit_judgement
    from rlhf.ml.data import read_jsonl

    demo = ROOT / "demo"
    meta = json.loads((demo / "project.json").read_text())
    drop_project()
    project = Project.objects.create(
        slug=SLUG,
        name="Train overhead benchmark (demo data)",
        description=meta.get("description", ""),
        overlap=meta.get("overlap", 1),
        judgement_kinds=meta.get("judgement_kinds", ["ranking"]),
        lease_seconds=meta.get("lease_seconds", 900),
        **{k: meta[k] for k in ("gold_rate", "gold_min_judged", "gold_min_accuracy",
                                "gold_pause", "review_threshold") if k in meta},
        guidelines=(demo / "guidelines.md").read_text(),
    )
    data = demo / "support_prompts.jsonl"
    result = import_file(project, data.name, data.read_bytes(), source="demo")
    quality = {}
    for row in read_jsonl(data):
        qualities = (row.get("metadata") or {}).get("qualities") or []
        quality.update(zip(row.get("candidates") or [], qualities, strict=False))

    group, _ = Group.objects.get_or_create(name=ANNOTATOR)
    submitted = 0
    started = time.monotonic()
    for i in range(ANNOTATORS):
        user, _ = User.objects.get_or_create(username=f"{ANNOTATOR_PREFIX}{i}")
        user.groups.add(group)
        while (assignment := queue.claim_next(project, user)) is not None:
            submit_judgement(user, assignment.pk, answer_for(project, assignment, quality),
                             uuid.uuid4())
            submitted += 1
    log(f"demo project: {result.prompts} prompts, {result.items} items, {submitted} "
        f"judgements by {ANNOTATORS} annotators in {time.monotonic() - started:.1f} s")
    return project


# -- measuring the app's parts -----------------------------------------------------------------


class Meter:
    """Wrap functions (by module attribute) to add up their time and calls; undo on exit."""

    def __init__(self):
        self.seconds = {}
        self.calls = {}
        self._undo = []

    def wrap(self, owner, name, label):
        original = getattr(owner, name, None)
        if original is None:
            return

        def timed(*args, **kwargs):
            started = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                self.seconds[label] = self.seconds.get(label, 0.0) + time.perf_counter() - started
                self.calls[label] = self.calls.get(label, 0) + 1

        # A class may inherit the method: then the wrapper is removed again, not replaced.
        own = name in getattr(owner, "__dict__", {})
        setattr(owner, name, timed)
        self._undo.append((owner, name, original if own else None))

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        for owner, name, original in reversed(self._undo):
            if original is None:
                delattr(owner, name)
            else:
                setattr(owner, name, original)


def trl_steps(meter, method):
    """Time TRL's training_step: the same computation on both paths, so a yardstick of noise."""
    import trl

    trainer = trl.DPOTrainer if method == "dpo" else trl.RewardTrainer
    meter.wrap(trainer, "training_step", "trl steps")


def run_app(project, base, config, method):
    """Launch a run and execute the Celery task in-process; return (seconds, figures)."""
    from rlhf import runner, services, tasks
    from rlhf.ml import dpo, reward
    from rlhf.models import RunMetric, TrainingRun

    ml = dpo if method == "dpo" else reward
    with Meter() as meter:
        # Where the runner finds it: rlhf.snapshots now, rlhf.services before.
        for name in ("rlhf.snapshots", "rlhf.services"):
            with contextlib.suppress(ImportError):
                meter.wrap(importlib.import_module(name), "build_snapshot", "snapshot")
        meter.wrap(ml, "train", "ml.train")
        for hook in ("on_metrics", "on_progress", "should_stop"):
            meter.wrap(runner.RunReporter, hook, hook)
        if method == "reward":
            meter.wrap(reward, "_fits", "length check")
            meter.wrap(reward, "pairwise_metrics", "pairwise eval")
        trl_steps(meter, method)
        run = services.launch_run(project, config, base)
        cpu = cpu_seconds()
        started = time.perf_counter()
        tasks.train.apply(args=[run.pk])
        seconds = time.perf_counter() - started
        cpu = cpu_seconds() - cpu
    run = TrainingRun.objects.select_related("snapshot").get(pk=run.pk)
    if run.status != TrainingRun.Status.SUCCEEDED:
        sys.exit(f"app {method} run {run.pk} ended {run.status}: {run.error}\n{run.traceback}")
    figures = {
        "cpu": cpu,
        "apply": seconds,
        "metric_rows": RunMetric.objects.filter(run=run).count(),
        "eval": dict(run.eval_metrics),
        "seconds": dict(meter.seconds),
        "calls": dict(meter.calls),
        "steps": run.progress_step,
        "snapshot": run.snapshot,
        "output": run.output_model.source,
    }
    return seconds, figures


# -- the bare TRL script -----------------------------------------------------------------------


def snapshot_rows(snapshot):
    from django.conf import settings

    train, held_out = [], []
    with open(Path(settings.MEDIA_ROOT) / snapshot.path) as fh:
        for line in fh:
            row = json.loads(line)
            split = row.pop("split")
            (train if split == "train" else held_out).append(row)
    return train, held_out


def bare_dpo(config, train_rows, eval_rows, model_path, output_dir):
    """A plain TRL DPO script: tokenizer, datasets, DPOTrainer, train, evaluate, save."""
    from datasets import Dataset
    from transformers import AutoTokenizer, PrinterCallback, set_seed
    from trl import DPOTrainer

    from rlhf.ml.dpo import _dpo_config

    set_seed(config.seed)
    tokenizer = AutoTokenizer.from_pretrained(model_path)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    train_dataset = Dataset.from_list(train_rows)
    eval_dataset = Dataset.from_list(eval_rows) if eval_rows else None
    with tempfile.TemporaryDirectory(prefix="bare-dpo-") as scratch:
        args = _dpo_config(config, scratch, evaluate=eval_dataset is not None)
        trainer = DPOTrainer(model=model_path, ref_model=None, args=args,
                             train_dataset=train_dataset, eval_dataset=eval_dataset,
                             processing_class=tokenizer)
        trainer.remove_callback(PrinterCallback)  # keeps the output readable; as the app
        trainer.train()
        metrics = trainer.evaluate() if eval_dataset is not None else {}
        trainer.model.save_pretrained(output_dir)
        tokenizer.save_pretrained(output_dir)
    return metrics, trainer.state.global_step


def bare_reward(config, train_rows, eval_rows, model_path, output_dir):
    """A plain TRL reward script (as trl/scripts/reward.py): a 1-label classifier, train, save."""
    import torch
    from datasets import Dataset
    from transformers import (
        AutoModelForSequenceClassification,
        AutoTokenizer,
        PrinterCallback,
        set_seed,
    )
    from trl import RewardTrainer

    from rlhf.ml.reward import _reward_config

    set_seed(config.seed)
    tokenizer = AutoTokenizer.from_pretrained(model_path)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    model = AutoModelForSequenceClassification.from_pretrained(
        model_path, num_labels=1, dtype=torch.float32
    )
    model.config.pad_token_id = tokenizer.pad_token_id
    train_dataset = Dataset.from_list(train_rows)
    eval_dataset = Dataset.from_list(eval_rows) if eval_rows else None
    with tempfile.TemporaryDirectory(prefix="bare-reward-") as scratch:
        args = _reward_config(config, scratch, evaluate=eval_dataset is not None)
        trainer = RewardTrainer(model=model, args=args, train_dataset=train_dataset,
                                eval_dataset=eval_dataset, processing_class=tokenizer)
        trainer.remove_callback(PrinterCallback)
        trainer.train()
        metrics = trainer.evaluate() if eval_dataset is not None else {}
        trainer.model.save_pretrained(output_dir)
        tokenizer.save_pretrained(output_dir)
    return metrics, trainer.state.global_step


def run_bare(method, config, train_rows, eval_rows, model_path, output_dir):
    fn = bare_dpo if method == "dpo" else bare_reward
    with Meter() as meter:
        trl_steps(meter, method)
        cpu = cpu_seconds()
        started = time.perf_counter()
        metrics, steps = fn(config, train_rows, eval_rows, model_path, str(output_dir))
        seconds = time.perf_counter() - started
        cpu = cpu_seconds() - cpu
    return seconds, {"cpu": cpu, "eval": metrics, "steps": steps, "seconds": meter.seconds}


# -- the benchmark -----------------------------------------------------------------------------


def make_config(method, steps, args):
    from rlhf.ml.config import DPORunConfig, RewardRunConfig

    common = {
        "max_steps": steps,
        "per_device_train_batch_size": args.batch_size,
        "max_length": args.max_length,
        "eval_fraction": args.eval_fraction,
        "seed": args.seed,
    }
    if method == "dpo":
        return DPORunConfig(learning_rate=5e-4, beta=0.1, **common)
    return RewardRunConfig(learning_rate=3e-4, **common)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dpo-steps", type=int, default=30, help="max_steps of each DPO run")
    parser.add_argument("--reward-steps", type=int, default=60,
                        help="max_steps of each reward-model run")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs of each path")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--max-length", type=int, default=256)
    parser.add_argument("--eval-fraction", type=float, default=0.1)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--base-steps", type=int, default=40,
                        help="training steps of the demo base model (built once, cached)")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch CPU threads (0: torch's default, one per core); 1 by "
                        "default: on a shared 2-core machine two threads stall whenever "
                        "another process takes a core")
    parser.add_argument("--methods", nargs="+", choices=("dpo", "reward"),
                        default=["dpo", "reward"])
    args = parser.parse_args(argv)

    given_db = bool(os.getenv("DATABASE_URL"))
    workdir = Path(tempfile.mkdtemp(prefix="train-overhead-bench-"))
    model_dir = None
    try:
        vendor, model_dir = setup(workdir, args.base_steps, args.threads)
        return bench(args, workdir, vendor, given_db)
    finally:
        if given_db and model_dir is not None:
            clean_up(model_dir)
        shutil.rmtree(workdir, ignore_errors=True)


def drop_project():
    """Delete the benchmark's project, with its judgements (which are protected otherwise)."""
    from annotate.models import Judgement, Project

    Judgement.objects.filter(item__project__slug=SLUG).delete()
    # Prompts, items, assignments, runs, snapshots, metrics and versions go with the project.
    Project.objects.filter(slug=SLUG).delete()


def clean_up(model_dir):
    """Remove what the benchmark wrote to a database it was given."""
    from django.contrib.auth.models import User

    from rlhf.models import ModelVersion

    drop_project()
    ModelVersion.objects.filter(project=None, source=str(model_dir)).delete()
    User.objects.filter(username__startswith=ANNOTATOR_PREFIX).delete()


def bench(args, workdir, vendor, given_db):
    import torch
    import transformers
    import trl

    from rlhf import services

    project = demo_project()
    base = services.ensure_base_model(project)
    steps = {"dpo": args.dpo_steps, "reward": args.reward_steps}
    bare_out = workdir / "bare"

    # Untimed warm-up: imports, first model loads, the snapshot file.
    log("warm-up: one short run of each path")
    rows = {}
    for method in args.methods:
        config = make_config(method, 2, args)
        _, figures = run_app(project, base, config, method)
        rows[method] = snapshot_rows(figures["snapshot"])
        run_bare(method, config, *rows[method], base.source, bare_out / "warmup")

    times = {m: {"app": [], "bare": []} for m in args.methods}
    details = {m: {"app": [], "bare": []} for m in args.methods}
    for repeat in range(args.repeats):
        for method in args.methods:
            config = make_config(method, steps[method], args)
            seconds, figures = run_app(project, base, config, method)
            times[method]["app"].append(seconds)
            details[method]["app"].append(figures)
            log(f"{method:6} app  #{repeat + 1}: {seconds:6.1f} s")
            train_rows, eval_rows = snapshot_rows(figures["snapshot"])
            if (train_rows, eval_rows) != rows[method]:
                sys.exit(f"{method}: the snapshot changed between runs")
            seconds, figures = run_bare(method, config, train_rows, eval_rows, base.source,
                                        bare_out / f"{method}-{repeat}")
            times[method]["bare"].append(seconds)
            details[method]["bare"].append(figures)
            log(f"{method:6} bare #{repeat + 1}: {seconds:6.1f} s")

    same = report(args, vendor, given_db, times, details, rows, steps, torch, transformers, trl)
    # A missed time target is a figure; two paths that train differently are a broken bench.
    return 0 if same else 1


def _part(figures, label):
    return figures["seconds"].get(label, 0.0)


def _hooks(figures):
    return sum(_part(figures, h) for h in ("on_metrics", "on_progress", "should_stop"))


def _extras(figures):
    """What rlhf.ml.reward.train does beyond TRL: the length check and pairwise accuracy."""
    return _part(figures, "length check") + _part(figures, "pairwise eval")


def _rest(figures):
    """The task wrapper, claiming the row and registering the version."""
    return figures["apply"] - _part(figures, "snapshot") - _part(figures, "ml.train")


def _app_only(figures):
    """Time spent in work the bare script does not do."""
    return _part(figures, "snapshot") + _hooks(figures) + _rest(figures) + _extras(figures)


def report(args, vendor, given_db, times, details, rows, steps, torch, transformers, trl):
    print()
    db = vendor if given_db else "SQLite file (temporary)"
    print(f"training overhead benchmark: app (rlhf.tasks.train.apply) vs bare TRL, "
          f"{os.cpu_count()} CPU core(s), torch {torch.__version__} "
          f"({torch.get_num_threads()} threads), transformers {transformers.__version__}, "
          f"trl {trl.__version__}, database: {db}")
    print(f"demo data: {len(rows[args.methods[0]][0])} train / "
          f"{len(rows[args.methods[0]][1])} eval preference pairs; batch {args.batch_size}, "
          f"max_length {args.max_length}, logging every step; median of {args.repeats} "
          "alternating runs")
    header = (f"{'method':7} {'steps':>5} {'app s':>7} {'bare s':>7} {'app/bare':>8} "
              f"{'min/min':>7} {'cpu ratio':>9} {'trl steps':>9} {'estimate':>8}  "
              "runs app | bare (s)")
    print(header)
    print("-" * len(header))
    verdicts = []
    for method in args.methods:
        app, bare = times[method]["app"], times[method]["bare"]
        ratio = statistics.median(app) / statistics.median(bare)
        app_runs, bare_runs = details[method]["app"], details[method]["bare"]
        cpu_ratio = (statistics.median(f["cpu"] for f in app_runs)
                     / statistics.median(f["cpu"] for f in bare_runs))
        step_ratio = (statistics.median(_part(f, "trl steps") for f in app_runs)
                      / statistics.median(_part(f, "trl steps") for f in bare_runs))
        bare_s = statistics.median(bare)
        estimate = (bare_s + statistics.median(_app_only(f) for f in app_runs)) / bare_s
        runs = " ".join(f"{s:.1f}" for s in app) + " | " + " ".join(f"{s:.1f}" for s in bare)
        print(f"{method:7} {steps[method]:5} {statistics.median(app):7.1f} {bare_s:7.1f} "
              f"{ratio:8.3f} {min(app) / min(bare):7.3f} {cpu_ratio:9.3f} {step_ratio:9.3f} "
              f"{estimate:8.3f}  {runs}")
        verdicts.append((method, ratio, estimate))

    print()
    print("app run breakdown (seconds; each figure the median over the timed app runs):")
    for method in args.methods:
        app = details[method]["app"]
        bare_s = statistics.median(times[method]["bare"])

        def med(fn, runs=app):
            return statistics.median(fn(f) for f in runs)

        def label(name, runs=app):
            return statistics.median(_part(f, name) for f in runs)

        def calls(name, runs=app):
            return statistics.median(f["calls"].get(name, 0) for f in runs)

        app_only = med(_app_only)
        print(f"  {method}: apply {med(lambda f: f['apply']):.2f} = snapshot "
              f"{label('snapshot'):.3f} + rlhf.ml train {label('ml.train'):.2f} "
              f"+ task/claim/register {med(_rest):.3f}")
        print(f"    inside training: metrics hook {label('on_metrics'):.3f} "
              f"({calls('on_metrics'):.0f} calls, "
              f"{med(lambda f: f['metric_rows']):.0f} RunMetric rows), "
              f"progress hook {label('on_progress'):.3f} ({calls('on_progress'):.0f} calls), "
              f"cancel poll {label('should_stop'):.3f} ({calls('should_stop'):.0f} calls, "
              "at most one query a second)")
        if method == "reward":
            print(f"    reward extras in rlhf.ml.reward.train: length check of every pair "
                  f"{label('length check'):.3f} ({calls('length check'):.0f} calls), "
                  f"pairwise held-out accuracy {label('pairwise eval'):.3f}")
        print(f"    work only the app does: {app_only:.2f} s = {100 * app_only / bare_s:.1f} % "
              f"of the bare run (snapshot, hooks {med(_hooks):.3f}, task/register"
              + (", reward extras" if med(_extras) else "") + ")")
        if med(_extras):
            print(f"    app/bare without the reward extras: "
                  f"{med(lambda f: f['apply'] - _extras(f)) / bare_s:.3f}")

    print()
    print("same training (last timed run; eval metrics app vs bare):")
    worst = 0.0
    for method in args.methods:
        app, bare = details[method]["app"][-1], details[method]["bare"][-1]
        names = [n for n in ("eval_loss", "eval_accuracy", "eval_rewards/accuracies")
                 if n in app["eval"] and n in bare["eval"]]
        worst = max([worst, *(abs(app["eval"][n] - bare["eval"][n]) for n in names)])
        shown = ", ".join(f"{n} {app['eval'][n]:.6f} vs {bare['eval'][n]:.6f}" for n in names)
        print(f"  {method}: steps {app['steps']} vs {bare['steps']}; {shown or 'no eval'}")

    print()
    for method, ratio, estimate in verdicts:
        status = "PASS" if ratio <= TARGET_RATIO else "MISS"
        print(f"{status}  {method} app/bare wall time <= {TARGET_RATIO}: {ratio:.3f} "
              f"(from the app-only work: {estimate:.3f})")
    same = worst <= SAME_TOLERANCE
    print(f"{'PASS' if same else 'MISS'}  both paths train the same model: eval metrics "
          f"differ by at most {worst:.1e} (<= {SAME_TOLERANCE:.0e})")
    return same

if __name__ == "__main__":
    sys.exit(main())
