"""The model side: model versions, dataset snapshots, training runs, metrics, generation jobs."""

from django.conf import settings
from django.db import models
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
