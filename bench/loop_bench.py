#!/usr/bin/env python
"""The whole RLHF loop on the demo project: generate, simulate, reward model, DPO, generate again.

    .venv/bin/python bench/loop_bench.py [--quick] [--candidates 4] [--rounds 1] ...

1. Setup: a private database (a SQLite file in a temporary directory, or
   LOOP_BENCH_DATABASE_URL), media and models in the same directory, Celery's in-memory broker
   (launch_* enqueue on commit; nothing consumes the messages, the bench executes the jobs
   in-process with rlhf.runner). `manage.py setup_demo --skip-model` loads the demo project;
   --eval-share of its prompts (seeded) become split "eval" before anything is generated. The
   base policy is built by rlhf.services.ensure_base_model (the tiny demo LM) and cached
   between runs under var/cache/loop-bench/, keyed by its BaseModelConfig and the demo data.
2. Generate: launch_generation of --candidates samples per train prompt from the base
   (prompts_for_generation), executed by rlhf.runner.execute_generation: one item per prompt.
3. Simulate: annotate.simulation.simulate, --annotators oracle-plus-noise annotators at
   --noise, through claim_next / submit_judgement, over every open item.
4. Reward model: launch_run(RewardRunConfig) + execute_run; its held-out accuracy, also per
   judgement label (beside the noise ceiling) and against the oracle's own order.
5. DPO from the base on the preference pairs (launch_run(DPORunConfig) + execute_run).
   With --rounds 2 the tuned policy is promoted, generates for the train prompts again, the
   new items are simulated, and DPO runs again from the tuned policy on all pairs.
6. Evaluate: base and tuned answer the held-out prompts (rlhf.ml.evaluate.answers, the same
   SampleConfig and seed for both; --eval-samples seeds per prompt); win_rate with the oracle
   as the scorer, and with the reward model.
7. Agreement: Krippendorff's alpha as the managers' dashboard computes it
   (annotate.dashboards.compute: nominal, one unit per item and candidate pair) beside
   annotate.simulation.implied_alpha.

It prints the figures, PASS/MISS against the 70 % win-rate target and the wall time per stage.
"""

import argparse
import hashlib
import json
import logging
import os
import random
import shutil
import statistics
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ.setdefault("HF_DATASETS_DISABLE_PROGRESS_BARS", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("TQDM_DISABLE", "1")  # TRL's "Computing reference log probs" bar

CACHE = ROOT / "var" / "cache" / "loop-bench"
DEMO_DATA = ROOT / "demo" / "support_prompts.jsonl"
TARGET_WIN_RATE = 0.70
STARTED = time.monotonic()


def log(message):
    elapsed = time.monotonic() - STARTED
    print(f"[{time.strftime('%H:%M:%S')} +{elapsed:6.0f}s] {message}", flush=True)


class Stages:
    """Wall time per stage, in order."""

    def __init__(self):
        self.seconds = {}

    def run(self, name, fn, *args, **kwargs):
        log(f"{name} ...")
        started = time.monotonic()
        result = fn(*args, **kwargs)
        self.seconds[name] = self.seconds.get(name, 0.0) + time.monotonic() - started
        log(f"{name}: {time.monotonic() - started:.1f} s")
        return result


# -- setup -----------------------------------------------------------------------------------


def base_config(args):
    from rlhf.ml.config import BaseModelConfig

    return BaseModelConfig(max_steps=args.base_steps) if args.base_steps > 0 else BaseModelConfig()


def base_cache_dir(config):
    """Where the base model built with this config from the demo data is kept between runs."""
    data_sha = hashlib.sha256(DEMO_DATA.read_bytes()).hexdigest()
    key = json.dumps(config.to_dict(), sort_keys=True) + data_sha
    return CACHE / f"demo-base-{hashlib.sha256(key.encode()).hexdigest()[:12]}"


def setup_django(args, workdir):
    """Point Django at a private database, media and models directory; migrate."""
    import warnings

    import torch
    import transformers

    torch.set_num_threads(args.threads)
    transformers.utils.logging.disable_progress_bar()
    warnings.filterwarnings("ignore", category=FutureWarning)
    os.environ["PREFLAB_VAR_DIR"] = str(workdir)
    os.environ["MEDIA_ROOT"] = str(workdir / "media")
    os.environ["PREFLAB_MODELS_DIR"] = str(workdir / "models")
    os.environ["DATABASE_URL"] = os.getenv(
        "LOOP_BENCH_DATABASE_URL", f"sqlite:///{workdir / 'loop.sqlite3'}"
    )
    os.environ["CELERY_BROKER_URL"] = "memory://"
    # The demo base model is built by ensure_base_model, not taken from the environment.
    os.environ["PREFLAB_BASE_MODEL"] = ""
    os.environ.setdefault("LOG_LEVEL", "WARNING")

    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    # The runner turns rlhf's logger to INFO during a run (a line per step, kept in the run's
    # log); keep those lines off the console.
    logging.getLogger("rlhf").propagate = False
    logging.getLogger("celery.app.trace").setLevel(logging.WARNING)
    # The in-memory broker has no hostname, which kombu reports on every enqueue.
    logging.getLogger("kombu.connection").setLevel(logging.ERROR)
    from django.db import connection

    return connection.vendor


def setup_demo(args):
    """Load the demo project, hold out prompts, and set the overlap and imported items."""
    import io

    from django.core.management import call_command

    from annotate.models import Item, Project, Prompt

    call_command("setup_demo", skip_model=True, stdout=io.StringIO())
    project = Project.objects.get(slug=json.loads((ROOT / "demo" / "project.json")
                                                  .read_text())["slug"])
    if Item.objects.filter(project=project).exclude(judgement_count=0).exists():
        sys.exit(f"{project.slug} already has judgements: give the bench its own database")
    if args.overlap:
        project.overlap = args.overlap
        project.save(update_fields=["overlap"])
    ids = list(Prompt.objects.filter(project=project).order_by("id").values_list("id", flat=True))
    held = random.Random(args.seed).sample(ids, round(len(ids) * args.eval_share))
    Prompt.objects.filter(pk__in=held).update(split=Prompt.Split.EVAL)
    imported = Item.objects.filter(project=project, is_gold=False)
    n_imported = imported.count()
    if args.imported == "close":
        imported.update(open_slots=0)
    elif args.overlap:
        imported.update(open_slots=args.overlap)
    return project, {
        "prompts": len(ids), "held_out": len(held), "imported_items": n_imported,
        "gold_items": Item.objects.filter(project=project, is_gold=True).count(),
        "overlap": project.overlap,
    }


def base_model(args, project):
    """Build (or reuse) the demo base policy through ensure_base_model; return its version."""
    from django.conf import settings

    from rlhf.services import DEMO_BASE_NAME, ensure_base_model

    config = base_config(args)
    cached = base_cache_dir(config)
    cached.parent.mkdir(parents=True, exist_ok=True)
    # ensure_base_model builds into MODELS_DIR/demo-base; the link makes that the cache
    # directory, where build_base_model finds a finished build (same config and data) at once.
    link = Path(settings.PREFLAB_MODELS_DIR) / DEMO_BASE_NAME
    link.parent.mkdir(parents=True, exist_ok=True)
    link.symlink_to(cached, target_is_directory=True)
    last = [0.0]

    def progress(fraction, message):
        if fraction >= last[0] + 0.1 or fraction >= 1.0:
            last[0] = fraction
            log(f"  base model: {message}")

    version = ensure_base_model(project, base_config=config, progress=progress)
    marker = json.loads((cached / "preflab_base.json").read_text())
    return version, marker, cached


# -- the loop --------------------------------------------------------------------------------


def sample_config(args, **overrides):
    from rlhf.ml.config import SampleConfig

    values = {"num_candidates": args.candidates, "max_new_tokens": args.max_new_tokens,
              "temperature": args.temperature, "top_p": args.top_p, "seed": args.seed,
              "batch_size": args.gen_batch}
    values.update(overrides)
    return SampleConfig(**values)


def generate(args, project, policy, seed):
    """Sample candidates for every train prompt from policy; queue them as items."""
    from rlhf import runner, services
    from rlhf.models import GenerationJob

    prompt_ids = services.prompts_for_generation(project, limit=args.train_prompts or 100_000)
    job = services.launch_generation(project, policy, sample_config(args, seed=seed), prompt_ids)
    runner.execute_generation(job.pk)
    job.refresh_from_db()
    if job.status != GenerationJob.Status.SUCCEEDED:
        sys.exit(f"generation {job.pk} ended {job.status}: {job.error}")
    return job


def simulate(args, project, seed):
    from annotate.simulation import simulate as run_simulation

    result = run_simulation(project, annotators=args.annotators, noise=args.noise,
                            oracle=args.oracle, seed=seed)
    log(f"  {result.judgements} judgements ({result.gold_judgements} gold, "
        f"{result.random_answers} random), paused: {result.paused or 'none'}, "
        f"skipped: {result.skipped}")
    return result


def train(project, config, base):
    """Launch a run and execute it in-process; exit with its error if it fails."""
    from rlhf import runner, services
    from rlhf.models import TrainingRun

    run = services.launch_run(project, config, base)
    runner.execute_run(run.pk)
    run = TrainingRun.objects.select_related("snapshot", "output_model").get(pk=run.pk)
    if run.status != TrainingRun.Status.SUCCEEDED:
        sys.exit(f"{run.method} run {run.pk} ended {run.status}: {run.error}\n{run.traceback}")
    log(f"  {run.method} run {run.pk}: {run.snapshot.train_rows} train / "
        f"{run.snapshot.eval_rows} held-out rows, {run.progress_step} steps")
    return run


def reward_config(args):
    from rlhf.ml.config import RewardRunConfig

    return RewardRunConfig(learning_rate=args.rm_lr, num_train_epochs=args.rm_epochs,
                           per_device_train_batch_size=args.rm_batch,
                           eval_fraction=args.rm_eval_fraction, max_length=args.max_length,
                           seed=args.seed)


def dpo_config(args):
    from rlhf.ml.config import DPORunConfig

    return DPORunConfig(learning_rate=args.dpo_lr, beta=args.dpo_beta, loss_type=args.dpo_loss,
                        num_train_epochs=args.dpo_epochs, max_steps=args.dpo_steps,
                        precompute_ref_log_probs=args.dpo_precompute,
                        per_device_train_batch_size=args.dpo_batch,
                        eval_fraction=args.dpo_eval_fraction, max_length=args.max_length,
                        seed=args.seed)


# -- measuring -------------------------------------------------------------------------------


def oracle_scorer(name):
    """The oracle as an rlhf.ml.evaluate scorer: (conversation, answer) -> score."""
    from annotate.simulation import get_oracle

    oracle = get_oracle(name)

    def scorer(conversation, answer):
        users = [m["content"] for m in conversation if m["role"] == "user"]
        return oracle.score(users[-1] if users else "", answer)

    return scorer


def criteria(texts):
    """Shares of texts meeting each apology-next-step criterion, mean words, score counts."""
    from annotate.simulation import APOLOGY, NEXT_STEP, SHORT_WORDS, words

    n = len(texts) or 1
    apology = [bool(APOLOGY.search(t)) for t in texts]
    step = [any(p.search(t) for p in NEXT_STEP) for t in texts]
    short = [words(t) < SHORT_WORDS for t in texts]
    met = Counter(a + s + w for a, s, w in zip(apology, step, short, strict=True))
    return {"n": len(texts), "apology": sum(apology) / n, "next_step": sum(step) / n,
            "short": sum(short) / n, "words": statistics.mean(words(t) for t in texts),
            "met": [met[k] / n for k in range(4)]}


def criteria_line(label, c):
    met = " ".join(f"{k}:{share:4.0%}" for k, share in enumerate(c["met"]))
    return (f"  {label:<26} n={c['n']:<5} apology {c['apology']:4.0%}  next step "
            f"{c['next_step']:4.0%}  <80 words {c['short']:4.0%}  mean words {c['words']:5.1f}"
            f"  criteria met {met}")


def reward_accuracy(run, oracle):
    """The reward model on the run's held-out prompts: per judgement label and vs the oracle.

    The app's eval_pairwise_accuracy is over the snapshot's held-out rows, which are
    deduplicated by text: a pair both annotators ordered alike is one row, a split pair two
    opposite rows. The noise ceiling is per label, so here every judgement's label counts.
    """
    from annotate.services import preference_rows
    from rlhf.ml.data import read_jsonl
    from rlhf.ml.reward import load_reward_model, score
    from rlhf.snapshots import snapshot_file

    snapshot_rows = list(read_jsonl(snapshot_file(run.snapshot)))
    held = {r["prompt_id"] for r in snapshot_rows if r["split"] == "eval"}
    eval_rows = [r for r in snapshot_rows if r["split"] == "eval"]
    labels = [r for r in preference_rows(run.project)
              if r["source"] == "judgement" and r["prompt_id"] in held]
    model, tokenizer = load_reward_model(run.output_model.source)
    keys, texts = {}, []
    for r in [*labels, *eval_rows]:
        for side in ("chosen", "rejected"):
            key = (r["prompt_id"], r[side][0]["content"])
            if key not in keys:
                keys[key] = len(texts)
                texts.append((r["prompt"], r[side][0]["content"]))
    values = score(model, [p for p, _ in texts], [t for _, t in texts], tokenizer=tokenizer)

    def rm(r, side):
        return values[keys[(r["prompt_id"], r[side][0]["content"])]]

    def orc(r, side):
        return oracle(r["prompt"], r[side][0]["content"])

    out = {"labels": len(labels), "rows": len(eval_rows)}
    if labels:
        out["rm_vs_labels"] = sum(rm(r, "chosen") > rm(r, "rejected") for r in labels) / len(labels)
        out["oracle_vs_labels"] = (sum(orc(r, "chosen") > orc(r, "rejected") for r in labels)
                                   / len(labels))
        pairs = {}
        for r in labels:
            a, b = sorted((r["chosen"][0]["content"], r["rejected"][0]["content"]))
            pairs[(r["prompt_id"], a, b)] = r
        agree = 0
        for r in pairs.values():
            rm_gap = rm(r, "chosen") - rm(r, "rejected")
            oracle_gap = orc(r, "chosen") - orc(r, "rejected")
            agree += (rm_gap > 0) == (oracle_gap > 0)
        out["pairs"] = len(pairs)
        out["rm_vs_oracle"] = agree / len(pairs)
    if eval_rows:
        out["oracle_vs_rows"] = (sum(orc(r, "chosen") > orc(r, "rejected") for r in eval_rows)
                                 / len(eval_rows))
    out["app"] = run.eval_metrics.get("eval_pairwise_accuracy")
    return out


def evaluate(args, project, base, tuned, reward_run, oracle):
    """Base and tuned answer the held-out prompts; oracle and reward-model win-rates.

    One result per evaluation temperature; each uses the same SampleConfig (and seeds) for
    both policies.
    """
    from annotate.models import Prompt
    from rlhf.ml.evaluate import answers, win_rate
    from rlhf.ml.reward import load_reward_model, score

    prompts = list(Prompt.objects.filter(project=project, split=Prompt.Split.EVAL).order_by("id"))
    conversations = [p.conversation for p in prompts]
    model, tokenizer = load_reward_model(reward_run.output_model.source)
    results = []
    for temperature in args.eval_temperature:
        convs, mine, theirs = [], [], []
        for k in range(args.eval_samples):
            config = sample_config(args, num_candidates=1, temperature=temperature,
                                   seed=args.seed + 1000 + k)
            mine += answers(tuned.source, conversations, config)
            theirs += answers(base.source, conversations, config)
            convs += conversations
        values = score(model, convs + convs, mine + theirs, tokenizer=tokenizer)
        rewards = {(json.dumps(c), a): v
                   for c, a, v in zip(convs + convs, mine + theirs, values, strict=True)}
        results.append({
            "temperature": temperature,
            "prompts": len(prompts),
            "oracle": win_rate(convs, mine, theirs, oracle),
            "reward": win_rate(convs, mine, theirs,
                               lambda c, a, r=rewards: r[(json.dumps(c), a)]),
            "identical": sum(a.strip() == b.strip() for a, b in zip(mine, theirs, strict=True)),
            "tuned": criteria(mine),
            "base": criteria(theirs),
            "examples": list(zip(conversations, mine, theirs, strict=False))[:3],
        })
    return results


def measured_alpha(project):
    from annotate.dashboards import compute

    figures = compute(project)
    return figures["overall"]["pairs"], figures["items_with_overlap"], figures["pairwise"]


# -- report ----------------------------------------------------------------------------------


def pct(x):
    return "-" if x is None else f"{100 * x:5.1f} %"


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    add = parser.add_argument
    add("--quick", action="store_true",
        help="a smoke run: base 60 steps, 2 candidates, 1 eval sample, 1 DPO epoch")
    add("--base-steps", type=int, default=0,
        help="base-model training steps; 0: BaseModelConfig's epochs (cached per setting)")
    add("--eval-share", type=float, default=0.2, help="share of demo prompts held out")
    add("--imported", choices=("close", "keep"), default="close",
        help="close: only generated items are judged; keep: the demo's imported items too")
    add("--overlap", type=int, default=0, help="judgements per item; 0: the demo's")
    add("--train-prompts", type=int, default=0,
        help="generate for at most this many train prompts per round; 0: all")
    add("--candidates", type=int, default=4, help="samples per train prompt per round")
    add("--max-new-tokens", type=int, default=112)
    add("--temperature", type=float, default=1.0, help="sampling temperature of candidates")
    add("--top-p", type=float, default=0.95)
    add("--gen-batch", type=int, default=16, help="sequences per generate call")
    add("--annotators", type=int, default=5)
    add("--noise", type=float, default=0.2)
    add("--oracle", default="apology-next-step")
    add("--max-length", type=int, default=256, help="prompt+completion tokens (RM and DPO)")
    add("--rm-lr", type=float, default=3e-4)
    add("--rm-epochs", type=float, default=2.0)
    add("--rm-batch", type=int, default=8)
    add("--rm-eval-fraction", type=float, default=0.2,
        help="share of train prompts the reward model holds out (eval prompts always are)")
    add("--dpo-lr", type=float, default=5e-4)
    add("--dpo-beta", type=float, default=0.1)
    add("--dpo-loss", default="sigmoid")
    add("--dpo-epochs", type=float, default=2.0)
    add("--dpo-steps", type=int, default=0, help="DPO optimizer steps; 0: --dpo-epochs")
    add("--dpo-precompute", action=argparse.BooleanOptionalAction, default=True,
        help="score the pairs with the reference once up front")
    add("--dpo-batch", type=int, default=8)
    add("--dpo-eval-fraction", type=float, default=0.0,
        help="share of train prompts DPO holds out (0: train on all of them)")
    add("--rounds", type=int, default=1, help="1, or 2: generate from the tuned policy, "
        "simulate and DPO again from it")
    add("--eval-samples", type=int, default=3, help="answers per held-out prompt and model")
    add("--eval-temperature", type=float, nargs="+", default=[0.7, 0.9],
        help="sampling temperatures of the evaluation answers; the first is held to the "
        "target (0.9 is the app's evaluation default)")
    add("--threads", type=int, default=1, help="torch threads (1: two threads on a shared "
        "2-core machine slow generation down several-fold whenever a core is busy)")
    add("--seed", type=int, default=0)
    add("--keep", action="store_true", help="keep the temporary directory")
    args = parser.parse_args(argv)
    if args.quick:
        args.base_steps = args.base_steps or 60
        args.candidates = min(args.candidates, 2)
        args.eval_samples = 1
        args.dpo_epochs = min(args.dpo_epochs, 1.0)
        args.rm_epochs = min(args.rm_epochs, 1.0)
    return args


def main(argv=None):
    args = parse_args(argv)

    workdir = Path(tempfile.mkdtemp(prefix="preflab-loop-bench-"))
    stages = Stages()
    try:
        report(args, workdir, stages)
    finally:
        if args.keep:
            log(f"kept {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)


def report(args, workdir, stages):
    import torch

    from annotate.simulation import implied_alpha, noise_ceiling

    vendor = stages.run("setup", setup_django, args, workdir)
    project, demo = stages.run("demo project", setup_demo, args)
    log(f"  {demo}")
    base, marker, cached = stages.run("base model", base_model, args, project)
    log(f"  {cached.name}: {marker['num_parameters']:,} parameters, {marker['steps']} steps, "
        f"final loss {marker['final_loss']:.3f} (built in {marker['train_seconds']} s)")
    oracle = oracle_scorer(args.oracle)

    from annotate.models import Candidate
    from rlhf.services import promote

    job = stages.run("generate (base)", generate, args, project, base, args.seed)
    base_texts = list(Candidate.objects.filter(model_version=base).values_list("text", flat=True))
    base_samples = criteria(base_texts)
    scores = [oracle([], t) for t in base_texts]
    histogram = Counter(int(s) for s in scores)
    sim = stages.run("simulate", simulate, args, project, args.seed)
    reward_run = stages.run("reward model", train, project, reward_config(args), base)
    rm = stages.run("reward accuracy", reward_accuracy, reward_run, oracle)
    dpo_run = stages.run("DPO", train, project, dpo_config(args), base)
    tuned = dpo_run.output_model
    rounds = [dpo_run]
    for r in range(2, args.rounds + 1):
        promote(project, tuned)
        stages.run(f"generate (round {r})", generate, args, project, tuned, args.seed + r)
        more = stages.run(f"simulate (round {r})", simulate, args, project, args.seed + r)
        sim.judgements += more.judgements
        sim.random_answers += more.random_answers
        dpo_run = stages.run(f"DPO (round {r})", train, project, dpo_config(args), tuned)
        tuned = dpo_run.output_model
        rounds.append(dpo_run)
    results = stages.run("evaluate", evaluate, args, project, base, tuned, reward_run, oracle)
    alpha, overlapped, percent = stages.run("alpha", measured_alpha, project)

    ceiling = noise_ceiling(args.noise)
    implied = implied_alpha(args.noise)
    total = time.monotonic() - STARTED

    print()
    print(f"loop benchmark: demo project, oracle {args.oracle!r}, {args.annotators} annotators "
          f"at noise {args.noise}, {torch.get_num_threads()} torch thread(s) on "
          f"{os.cpu_count()} CPU core(s), {vendor}")
    print(f"settings: base {cached.name} ({marker['steps']} steps); {args.candidates} "
          f"candidates/prompt, max_new_tokens {args.max_new_tokens}, T {args.temperature}, "
          f"top_p {args.top_p}; overlap {demo['overlap']}; imported items {args.imported}; "
          f"RM lr {args.rm_lr} x {args.rm_epochs} ep; DPO {args.dpo_loss} lr {args.dpo_lr} "
          f"beta {args.dpo_beta} x "
          f"{f'{args.dpo_steps} steps' if args.dpo_steps > 0 else f'{args.dpo_epochs} ep'}, "
          f"batch {args.dpo_batch}; "
          f"rounds {args.rounds}; eval {args.eval_samples} sample(s)/prompt at T "
          f"{' and '.join(map(str, args.eval_temperature))}")
    print(f"data: {demo['prompts']} prompts, {demo['held_out']} held out (split eval); "
          f"{job.candidates_created} base candidates on {job.total} train prompts; "
          f"{sim.judgements} judgements ({sim.random_answers} random); "
          + "; ".join(f"DPO run {r.pk}: {r.snapshot.train_rows} pairs" for r in rounds))
    print()
    print("base samples (the oracle's criteria; 'criteria met' = share meeting 0..3 of them):")
    print(criteria_line("base candidates (train)", base_samples))
    print("  oracle score histogram (floor): "
          + "  ".join(f"{k}: {histogram[k]}" for k in sorted(histogram)))
    for result in results:
        t = result["temperature"]
        print(criteria_line(f"base, held-out, T {t}", result["base"]))
        print(criteria_line(f"tuned, held-out, T {t}", result["tuned"]))
    print()
    rows = []
    for i, result in enumerate(results):
        wr, rwr, t = result["oracle"], result["reward"], result["temperature"]
        verdict = ("PASS" if wr["win_rate"] >= TARGET_WIN_RATE else "MISS") if i == 0 else "-"
        rows += [
            (f"oracle win-rate, T {t}", pct(wr["win_rate"]),
             f"95 % CI {pct(wr['ci_low'])} - {pct(wr['ci_high'])}; {wr['wins']} W / "
             f"{wr['ties']} T / {wr['losses']} L of {wr['n']} ({result['prompts']} held-out "
             f"prompts x {args.eval_samples}); mean oracle score {wr['policy_mean_score']:.2f}"
             f" vs {wr['baseline_mean_score']:.2f}; {result['identical']} identical",
             f"target >= {pct(TARGET_WIN_RATE).strip()}: {verdict}"),
            (f"reward-model win-rate, T {t}", pct(rwr["win_rate"]),
             f"95 % CI {pct(rwr['ci_low'])} - {pct(rwr['ci_high'])}; the same answers scored "
             f"by the reward model", ""),
        ]
    rows += [
        ("RM held-out acc. (app metric)", pct(rm["app"]),
         f"eval_pairwise_accuracy over {rm['rows']} deduplicated held-out rows; the oracle "
         f"itself scores {pct(rm.get('oracle_vs_rows'))} on them", ""),
        ("RM acc. vs judgement labels", pct(rm.get("rm_vs_labels")),
         f"{rm['labels']} held-out labels; the oracle itself scores "
         f"{pct(rm.get('oracle_vs_labels'))} on them",
         f"noise ceiling {pct(ceiling).strip()} (ratio "
         f"{rm.get('rm_vs_labels', 0) / ceiling:.2f})"),
        ("RM acc. vs oracle order", pct(rm.get("rm_vs_oracle")),
         f"{rm.get('pairs', 0)} distinct held-out pairs", ""),
        ("Krippendorff alpha (measured)", "-" if alpha is None else f"{alpha:7.3f}",
         f"annotate.dashboards.compute, nominal, pair units of {overlapped} items; pairwise "
         f"agreement {pct(percent['agreement'])}",
         f"implied (1-n)^2 = {implied:.3f} (ratio "
         f"{(alpha or 0) / implied:.2f})"),
    ]
    width = max(len(r[0]) for r in rows)
    for name, value, detail, verdict in rows:
        print(f"{name:<{width}}  {value:>8}  {verdict:<34}  {detail}")
    print()
    print("wall time per stage: " + ", ".join(f"{k} {v:.0f} s" for k, v in
                                              stages.seconds.items())
          + f"; total {total:.0f} s ({total / 60:.1f} min)")
    print()
    print(f"held-out examples at T {results[0]['temperature']} (tuned | base):")
    for conversation, mine, theirs in results[0]["examples"]:
        print(f"  Q: {conversation[-1]['content'][:100]}")
        print(f"    tuned ({oracle(conversation, mine):.2f}): {mine[:160]!r}")
        print(f"    base  ({oracle(conversation, theirs):.2f}): {theirs[:160]!r}")


if __name__ == "__main__":
    main()
