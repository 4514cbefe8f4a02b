"""The model side: model versions, dataset snapshots, training runs, metrics, generation jobs."""

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import Q
from django.urls import reverse
from django.utils import timezone


class ModelVersion(models.Model):
    class Kind(models.TextChoices):
        POLICY = "policy", "Policy"
        REWARD = "reward", "Reward model"

    project = models.ForeignKey(
        "annotate.Project", null=True, blank=True, on_delete=models.CASCADE, related_name="models"
    )
    name = models.CharField(max_length=200)
    kind = models.CharField(max_length=10, choices=Kind.choices, default=Kind.POLICY)
    # A hub id or a local path: what `from_pretrained` is given.
    source = models.CharField(max_length=500)
    parent = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="children"
    )
    metrics = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self):
        return self.name


class DatasetSnapshot(models.Model):
    """A frozen training set derived from raw judgements: what a run actually saw."""

    class Kind(models.TextChoices):
        PREFERENCE = "preference", "Preference pairs"
        SFT = "sft", "SFT targets"
        KTO = "kto", "KTO rows"
        PROMPTS = "prompts", "Prompts for online RL"

    project = models.ForeignKey(
        "annotate.Project", on_delete=models.CASCADE, related_name="snapshots"
    )
    kind = models.CharField(max_length=20, choices=Kind.choices, default=Kind.PREFERENCE)
    path = models.CharField(max_length=500)
    sha256 = models.CharField(max_length=64)
    rows = models.PositiveIntegerField()
    train_rows = models.PositiveIntegerField(default=0)
    eval_rows = models.PositiveIntegerField(default=0)
    filters = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self):
        return f"{self.kind} snapshot {self.sha256[:12]} ({self.rows} rows)"

    def get_absolute_url(self):
        return reverse("rlhf-snapshot-download", args=[self.pk])


class TrainingRun(models.Model):
    class Method(models.TextChoices):
        REWARD = "reward", "Reward model"
        DPO = "dpo", "DPO"
        GRPO = "grpo", "Online RL (GRPO)"
        RLOO = "rloo", "Online RL (RLOO)"
        SFT = "sft", "Supervised fine-tuning"
        KTO = "kto", "KTO"

    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Running"
        SUCCEEDED = "succeeded", "Succeeded"
        FAILED = "failed", "Failed"
        CANCELLED = "cancelled", "Cancelled"

    FINISHED = (Status.SUCCEEDED, Status.FAILED, Status.CANCELLED)

    project = models.ForeignKey("annotate.Project", on_delete=models.CASCADE, related_name="runs")
    method = models.CharField(max_length=20, choices=Method.choices, default=Method.DPO)
    config = models.JSONField(default=dict)
    base_model = models.ForeignKey(
        ModelVersion, on_delete=models.PROTECT, related_name="runs_as_base"
    )
    status = models.CharField(max_length=12, choices=Status.choices, default=Status.QUEUED)
    snapshot = models.ForeignKey(
        DatasetSnapshot, null=True, blank=True, on_delete=models.SET_NULL, related_name="runs"
    )
    output_model = models.OneToOneField(
        ModelVersion, null=True, blank=True, on_delete=models.SET_NULL, related_name="run"
    )
    cancel_requested = models.BooleanField(default=False)
    progress_step = models.PositiveIntegerField(default=0)
    progress_total = models.PositiveIntegerField(default=0)
    eval_metrics = models.JSONField(default=dict, blank=True)
    error = models.TextField(blank=True)
    traceback = models.TextField(blank=True)
    # The run's log as the worker wrote it (its last lines; metrics per step included).
    log = models.TextField(blank=True)
    # A retry of a failed run that continues from the checkpoint it left (same snapshot).
    resumed_from = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="resumptions"
    )
    resumed_at_step = models.PositiveIntegerField(null=True, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["status"], name="run_status_idx")]

    def __str__(self):
        return f"{self.get_method_display()} run {self.pk}"

    def get_absolute_url(self):
        return reverse("rlhf-run-detail", args=[self.pk])

    @property
    def is_finished(self):
        return self.status in self.FINISHED


class RunMetric(models.Model):
    run = models.ForeignKey(TrainingRun, on_delete=models.CASCADE, related_name="metrics")
    step = models.PositiveIntegerField()
    name = models.CharField(max_length=100)
    value = models.FloatField()

    class Meta:
        ordering = ["run", "step", "name"]
        constraints = [
            models.UniqueConstraint(fields=["run", "name", "step"], name="metric_unique_step")
        ]

    def __str__(self):
        return f"{self.name}@{self.step}={self.value:g}"


class GenerationJob(models.Model):
    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Running"
        SUCCEEDED = "succeeded", "Succeeded"
        FAILED = "failed", "Failed"
        CANCELLED = "cancelled", "Cancelled"

    project = models.ForeignKey(
        "annotate.Project", on_delete=models.CASCADE, related_name="generation_jobs"
    )
    model_version = models.ForeignKey(ModelVersion, on_delete=models.PROTECT, related_name="+")
    prompt_ids = models.JSONField(default=list)
    config = models.JSONField(default=dict)
    status = models.CharField(max_length=12, choices=Status.choices, default=Status.QUEUED)
    done = models.PositiveIntegerField(default=0)
    total = models.PositiveIntegerField(default=0)
    candidates_created = models.PositiveIntegerField(default=0)
    error = models.TextField(blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self):
        return f"generation {self.pk}"

    def get_absolute_url(self):
        return reverse("rlhf-generation-detail", args=[self.pk])

    @property
    def is_finished(self):
        return self.status in (self.Status.SUCCEEDED, self.Status.FAILED, self.Status.CANCELLED)

    @property
    def percent(self):
        return int(100 * self.done / self.total) if self.total else 0


class PolicyEvaluation(models.Model):
    """A policy version against a baseline (its parent) on held-out prompts.

    Judged by a reward-model version (both answer every prompt; the higher score wins) or by
    people: pairwise items (one answer from each model, in random order, names hidden) that
    annotators judge like any other item; the win-rate is read from their judgements.
    """

    class Judge(models.TextChoices):
        REWARD = "reward", "Reward model"
        HUMAN = "human", "Blind human evaluation"

    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Running"
        SUCCEEDED = "succeeded", "Succeeded"
        FAILED = "failed", "Failed"

    project = models.ForeignKey(
        "annotate.Project", on_delete=models.CASCADE, related_name="evaluations"
    )
    policy = models.ForeignKey(ModelVersion, on_delete=models.CASCADE, related_name="evaluations")
    baseline = models.ForeignKey(ModelVersion, on_delete=models.CASCADE, related_name="+")
    judge = models.CharField(max_length=10, choices=Judge.choices)
    reward_model = models.ForeignKey(
        ModelVersion, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    status = models.CharField(max_length=12, choices=Status.choices, default=Status.QUEUED)
    prompt_ids = models.JSONField(default=list)
    config = models.JSONField(default=dict, blank=True)
    # Reward-judged results; a human evaluation computes its figures from the judgements.
    results = models.JSONField(default=dict, blank=True)
    items = models.ManyToManyField("annotate.Item", blank=True, related_name="evaluations")
    done = models.PositiveIntegerField(default=0)
    total = models.PositiveIntegerField(default=0)
    error = models.TextField(blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self):
        return f"{self.policy} vs {self.baseline} ({self.get_judge_display()})"

    def get_absolute_url(self):
        return reverse("rlhf-evaluation-detail", args=[self.pk])

    @property
    def is_finished(self):
        return self.status in (self.Status.SUCCEEDED, self.Status.FAILED)


class LoopPolicy(models.Model):
    """When and how a project re-trains itself from new judgements (the continuous loop)."""

    class Recipe(models.TextChoices):
        REWARD_DPO = "reward_dpo", "Reward model, then DPO (gate judged by the new reward model)"
        DPO = "dpo", "DPO (gate judged by the project's reward model)"
        SFT = "sft", "SFT on corrections and gold answers"
        KTO = "kto", "KTO on thumbs and ratings"

    project = models.OneToOneField(
        "annotate.Project", on_delete=models.CASCADE, related_name="loop_policy"
    )
    enabled = models.BooleanField(
        default=False, help_text="Celery beat checks this project and starts iterations."
    )
    paused = models.BooleanField(default=False)
    paused_reason = models.CharField(max_length=300, blank=True)
    min_new_judgements = models.PositiveIntegerField(
        default=50, help_text="Start an iteration once this many judgements arrived since the last."
    )
    recipe = models.CharField(max_length=20, choices=Recipe.choices, default=Recipe.REWARD_DPO)
    # Overrides of the recipe's run configs: {"reward": {...}, "dpo": {...}, ...}.
    run_settings = models.JSONField(default=dict, blank=True)
    gate_win_rate = models.FloatField(
        default=0.55,
        validators=[MinValueValidator(0.0), MaxValueValidator(1.0)],
        help_text="Promote the new policy only if its win-rate over the current one reaches this.",
    )
    eval_prompts = models.PositiveIntegerField(
        default=50, help_text="Held-out prompts the gate evaluation answers."
    )
    pause_on_refusal = models.BooleanField(
        default=False, help_text="Pause the loop when the gate refuses a model."
    )
    generate_after = models.BooleanField(
        default=True, help_text="Generate candidates for open prompts with the promoted model."
    )
    candidates_per_prompt = models.PositiveSmallIntegerField(default=2)
    generate_prompts = models.PositiveIntegerField(default=100)
    augment = models.BooleanField(
        default=False, help_text="Add paraphrases of train prompts written by the current model."
    )
    paraphrases_per_prompt = models.PositiveSmallIntegerField(default=1)
    # Judgement id high-water mark of the last iteration's snapshot.
    last_judgement_id = models.BigIntegerField(default=0)
    updated_at = models.DateTimeField(default=timezone.now)

    def __str__(self):
        return f"loop policy of {self.project}"


class LoopIteration(models.Model):
    """One pass of the loop: snapshot, train, evaluate, gate, promote, generate."""

    class Status(models.TextChoices):
        RUNNING = "running", "Running"
        PROMOTED = "promoted", "Promoted"
        REFUSED = "refused", "Refused by the gate"
        FAILED = "failed", "Failed"

    class Trigger(models.TextChoices):
        SCHEDULE = "schedule", "Schedule"
        MANUAL = "manual", "Manual"

    project = models.ForeignKey(
        "annotate.Project", on_delete=models.CASCADE, related_name="loop_iterations"
    )
    status = models.CharField(max_length=12, choices=Status.choices, default=Status.RUNNING)
    trigger = models.CharField(max_length=10, choices=Trigger.choices, default=Trigger.SCHEDULE)
    stage = models.CharField(max_length=40, blank=True)
    recipe = models.CharField(max_length=20, blank=True)
    new_judgements = models.PositiveIntegerField(default=0)
    judgement_high_water = models.BigIntegerField(default=0)
    baseline = models.ForeignKey(
        ModelVersion, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    runs = models.ManyToManyField(TrainingRun, blank=True, related_name="loop_iterations")
    candidate = models.ForeignKey(
        ModelVersion, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    evaluation = models.ForeignKey(
        PolicyEvaluation, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    generation = models.ForeignKey(
        GenerationJob, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    win_rate = models.FloatField(null=True, blank=True)
    gate = models.FloatField(null=True, blank=True)
    error = models.TextField(blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    started_at = models.DateTimeField(default=timezone.now)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-started_at", "-id"]
        constraints = [
            # At most one iteration per project at a time, whatever beat or people do.
            models.UniqueConstraint(
                fields=["project"], condition=Q(status="running"), name="loop_one_running"
            )
        ]

    def __str__(self):
        return f"loop iteration {self.pk} of {self.project}"


class LoopEvent(models.Model):
    """A line on the project's timeline: every automatic step with its figures."""

    project = models.ForeignKey(
        "annotate.Project", on_delete=models.CASCADE, related_name="loop_events"
    )
    iteration = models.ForeignKey(
        LoopIteration, null=True, blank=True, on_delete=models.CASCADE, related_name="events"
    )
    kind = models.CharField(max_length=40)
    message = models.CharField(max_length=500)
    data = models.JSONField(default=dict, blank=True)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self):
        return f"{self.kind}: {self.message}"


WEBHOOK_EVENTS = {
    "run.finished": "A training run finished (succeeded, failed or cancelled)",
    "model.promoted": "A model version became the project's current generator",
    "loop.paused": "The loop paused (a gate refused a model, or someone paused it)",
}


def default_webhook_events():
    return list(WEBHOOK_EVENTS)


class Webhook(models.Model):
    """An outgoing webhook: JSON POSTs signed with HMAC-SHA256 of the body under `secret`."""

    project = models.ForeignKey(
        "annotate.Project", on_delete=models.CASCADE, related_name="webhooks"
    )
    url = models.URLField(max_length=500)
    secret = models.CharField(max_length=100)
    events = models.JSONField(default=default_webhook_events)
    active = models.BooleanField(default=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["id"]

    def __str__(self):
        return self.url


class WebhookDelivery(models.Model):
    """One event sent (or being retried) to one webhook."""

    webhook = models.ForeignKey(Webhook, on_delete=models.CASCADE, related_name="deliveries")
    event = models.CharField(max_length=40)
    payload = models.JSONField(default=dict)
    attempts = models.PositiveSmallIntegerField(default=0)
    status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    error = models.CharField(max_length=500, blank=True)
    delivered_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self):
        return f"{self.event} to {self.webhook}"
