"""The human side: projects, prompts, candidates, items, assignments and raw judgements."""

import random
import uuid
from datetime import timedelta

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import Q
from django.urls import reverse
from django.utils import timezone

from .agreement import pair_order, rank_positions

JUDGEMENT_KINDS = {
    "ranking": "Rank all candidates (ties allowed)",
    "pairwise": "Compare two candidates: A, B, tie or both bad",
    "rating": "Rate each candidate on the rubric",
    "correction": "Correct a candidate by editing it",
}
DEFAULT_DIMENSIONS = ["helpfulness", "harmlessness", "honesty"]
FLAGS = {
    "unsafe": "Unsafe",
    "pii": "Contains PII",
    "off_topic": "Off-topic",
    "unanswerable": "Prompt unanswerable",
}
SKIP_REASONS = {
    "unsure": "Not sure / outside my expertise",
    "broken": "Broken or unreadable item",
    "too_long": "Too long to judge now",
    "other": "Other",
}


ORDERINGS = {
    "sequential": "Sequential (import order)",
    "random": "Random",
    "breadth_first": "Breadth-first (fewest judgements first)",
    "disagreement_first": "Disagreement first (items annotators disagree on)",
    "active_learning": "Active learning (items the reward model is least sure about first)",
}

# rm_margin of an item no reward model has scored yet: active learning hands these out last.
UNSCORED_MARGIN = 1e9


def random_key():
    return random.random()


def default_kinds():
    return ["ranking"]


def default_dimensions():
    return list(DEFAULT_DIMENSIONS)


class ProjectQuerySet(models.QuerySet):
    def visible_to(self, user):
        """All projects for engineers and managers; else the open ones and those admitting
        the user (the home page's list, and the API's)."""
        from .roles import ENGINEER, MANAGER, has_role

        if has_role(user, ENGINEER, MANAGER):
            return self
        return self.filter(Q(annotators=None) | Q(annotators=user)).distinct()


class Project(models.Model):
    name = models.CharField(max_length=200)
    slug = models.SlugField(max_length=80, unique=True)
    description = models.TextField(blank=True)
    judgement_kinds = models.JSONField(
        default=default_kinds,
        help_text="Any of: ranking, pairwise (items of two candidates), rating, correction.",
    )
    rating_dimensions = models.JSONField(default=default_dimensions, blank=True)
    rating_scale = models.PositiveSmallIntegerField(
        default=5, choices=[(5, "1–5"), (7, "1–7")], help_text="Likert scale for ratings."
    )
    undo_seconds = models.PositiveSmallIntegerField(
        default=10, validators=[MaxValueValidator(600)],
        help_text="How long an annotator may take back a submission.",
    )
    guidelines = models.TextField(blank=True, help_text="Markdown shown to annotators.")
    overlap = models.PositiveSmallIntegerField(
        default=1,
        validators=[MinValueValidator(1), MaxValueValidator(20)],
        help_text="How many annotators judge each item.",
    )
    lease_seconds = models.PositiveIntegerField(
        default=900,
        validators=[MinValueValidator(30)],
        help_text="How long an item stays reserved for the annotator who opened it.",
    )
    ordering = models.CharField(
        max_length=20, choices=list(ORDERINGS.items()), default="sequential",
        help_text="Which open item an annotator gets next.",
    )
    max_pending = models.PositiveSmallIntegerField(
        default=2,
        validators=[MinValueValidator(1), MaxValueValidator(50)],
        help_text="Items one annotator may hold at once (2 lets the next item be prefetched).",
    )
    annotators = models.ManyToManyField(
        settings.AUTH_USER_MODEL, blank=True, related_name="annotation_projects",
        help_text="Who may annotate; nobody selected means every annotator.",
    )
    current_model = models.ForeignKey(
        "rlhf.ModelVersion",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        help_text="The policy that generates new candidates.",
    )
    reward_model = models.ForeignKey(
        "rlhf.ModelVersion",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        help_text="The reward model that scores open items for active learning.",
    )
    gold_rate = models.FloatField(
        default=0.0,
        validators=[MinValueValidator(0.0), MaxValueValidator(0.5)],
        help_text="Share of claims that hand out a gold item (one with a known answer), 0–0.5.",
    )
    gold_min_accuracy = models.FloatField(
        default=0.7,
        validators=[MinValueValidator(0.0), MaxValueValidator(1.0)],
        help_text="Annotators whose gold accuracy falls below this are flagged to managers.",
    )
    gold_min_judged = models.PositiveSmallIntegerField(
        default=5,
        validators=[MinValueValidator(1)],
        help_text="Gold items an annotator judges before their accuracy is held against them.",
    )
    gold_pause = models.BooleanField(
        default=False,
        help_text="Pause flagged annotators (they get no more items until a manager resumes them).",
    )
    review_threshold = models.FloatField(
        null=True,
        blank=True,
        default=0.5,
        validators=[MinValueValidator(0.0), MaxValueValidator(1.0)],
        help_text="Fully judged items whose disagreement reaches this go to review (blank: none).",
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)

    objects = ProjectQuerySet.as_manager()

    class Meta:
        ordering = ["name"]

    def __str__(self):
        return self.name

    def get_absolute_url(self):
        return reverse("annotate-project", args=[self.slug])

    def admits(self, user):
        """Return whether the user may annotate here (assigned, or the project is open)."""
        if user.is_superuser:
            return True
        members = self.annotators.all()
        return not members.exists() or members.filter(pk=user.pk).exists()

    def kinds_for(self, n_candidates):
        """Return the judgement kinds an item with this many candidates asks for."""
        kinds = [k for k in JUDGEMENT_KINDS if k in self.judgement_kinds]
        if "pairwise" in kinds and n_candidates == 2:
            kinds = [k for k in kinds if k != "ranking"]
        elif "pairwise" in kinds:
            kinds = [k for k in kinds if k != "pairwise"]
            if "ranking" not in kinds and "rating" not in kinds:
                kinds.insert(0, "ranking")
        return kinds


class Prompt(models.Model):
    class Split(models.TextChoices):
        TRAIN = "train", "Train"
        EVAL = "eval", "Held-out"

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="prompts")
    external_id = models.CharField(max_length=200, blank=True)
    # A list of {"role": "system"|"user"|"assistant", "content": str}, ending with a user turn.
    conversation = models.JSONField()
    split = models.CharField(max_length=10, choices=Split.choices, default=Split.TRAIN)
    source = models.CharField(max_length=40, default="import")
    metadata = models.JSONField(default=dict, blank=True)
    # A paraphrase the current model wrote of another prompt (augmentation): always train split.
    augmented_from = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.CASCADE, related_name="paraphrases"
    )
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["id"]
        constraints = [
            models.CheckConstraint(
                condition=Q(augmented_from__isnull=True) | Q(split="train"),
                name="prompt_augmented_is_train",
            ),
            models.UniqueConstraint(
                fields=["project", "external_id"],
                condition=~Q(external_id=""),
                name="prompt_unique_external_id",
            )
        ]

    def __str__(self):
        return self.external_id or f"prompt {self.pk}"

    @property
    def is_augmented(self):
        return self.augmented_from_id is not None

    @property
    def last_user_message(self):
        for turn in reversed(self.conversation):
            if turn["role"] == "user":
                return turn["content"]
        return ""


class Candidate(models.Model):
    class Origin(models.TextChoices):
        MODEL = "model", "Model"
        HUMAN = "human", "Human"
        IMPORT = "import", "Import"
        CORRECTION = "correction", "Correction"

    prompt = models.ForeignKey(Prompt, on_delete=models.CASCADE, related_name="candidates")
    text = models.TextField()
    origin = models.CharField(max_length=20, choices=Origin.choices, default=Origin.IMPORT)
    model_version = models.ForeignKey(
        "rlhf.ModelVersion", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    parent = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="children"
    )
    metadata = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["id"]

    def __str__(self):
        return f"candidate {self.pk}"


class ReviewStatus(models.TextChoices):
    NONE = "", "Not for review"
    PENDING = "pending", "Waiting for review"
    RESOLVED = "resolved", "Adjudicated"


class Item(models.Model):
    """One unit of work: a prompt with an ordered set of candidates, judged `overlap` times."""

    ReviewStatus = ReviewStatus

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="items")
    prompt = models.ForeignKey(Prompt, on_delete=models.CASCADE, related_name="items")
    candidates = models.ManyToManyField(Candidate, related_name="items")
    # Assignments still wanted (overlap minus active or submitted ones). Kept on the row so
    # claiming the next item never counts judgements.
    open_slots = models.PositiveSmallIntegerField(default=1)
    judgement_count = models.PositiveIntegerField(default=0)
    # A fixed random key per item: "random" ordering walks an index instead of ORDER BY random().
    shuffle_key = models.FloatField(default=random_key)
    # 1 - pairwise agreement of the item's live judgements (0 until two annotators judged it).
    disagreement = models.FloatField(default=0.0)
    # Smallest reward-score gap between the item's candidates under the project's reward model
    # (UNSCORED_MARGIN until scored): active learning hands out the smallest first.
    rm_margin = models.FloatField(default=UNSCORED_MARGIN)
    # Gold items have a known answer; they are shown to every annotator once, never fill up,
    # and are not in the open-item indexes (open_slots stays 0).
    is_gold = models.BooleanField(default=False)
    # Groups of candidate ids, best first (ties in one group), like Judgement.ranking.
    gold_ranking = models.JSONField(default=list, blank=True)
    review_status = models.CharField(
        max_length=10, choices=ReviewStatus.choices, default=ReviewStatus.NONE, blank=True
    )
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["id"]
        # Only items that still want judgements are in the index, so claiming stays fast when
        # most of a large queue is done.
        indexes = [
            models.Index(fields=["project", "id"], condition=Q(open_slots__gt=0),
                         name="item_open_idx"),
            models.Index(fields=["project", "shuffle_key"], condition=Q(open_slots__gt=0),
                         name="item_open_random_idx"),
            models.Index(fields=["project", "-open_slots", "id"], condition=Q(open_slots__gt=0),
                         name="item_open_breadth_idx"),
            models.Index(fields=["project", "-disagreement", "id"],
                         condition=Q(open_slots__gt=0), name="item_open_disagree_idx"),
            models.Index(fields=["project", "rm_margin", "id"],
                         condition=Q(open_slots__gt=0), name="item_open_margin_idx"),
            models.Index(fields=["project", "shuffle_key"], condition=Q(is_gold=True),
                         name="item_gold_idx"),
            models.Index(fields=["project", "review_status", "id"],
                         condition=~Q(review_status=""), name="item_review_idx"),
        ]
        constraints = [
            models.CheckConstraint(condition=Q(open_slots__gte=0), name="item_open_slots_gte_0")
        ]

    def __str__(self):
        return f"item {self.pk}"


class Assignment(models.Model):
    class Status(models.TextChoices):
        ACTIVE = "active", "Active"
        SUBMITTED = "submitted", "Submitted"
        EXPIRED = "expired", "Expired"
        SKIPPED = "skipped", "Skipped"

    item = models.ForeignKey(Item, on_delete=models.CASCADE, related_name="assignments")
    annotator = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="assignments"
    )
    status = models.CharField(max_length=12, choices=Status.choices, default=Status.ACTIVE)
    # Candidate ids in the order this annotator sees them (randomised per assignment).
    shown_order = models.JSONField(default=list)
    leased_until = models.DateTimeField()
    skip_reason = models.CharField(max_length=300, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["item", "annotator"], name="assignment_unique_annotator"
            )
        ]
        indexes = [models.Index(fields=["status", "leased_until"], name="assignment_lease_idx")]

    def __str__(self):
        return f"{self.annotator} on {self.item}"

    @property
    def lease_expired(self):
        return self.leased_until <= timezone.now()

    def renew(self, seconds):
        self.leased_until = timezone.now() + timedelta(seconds=seconds)


class Judgement(models.Model):
    """A raw judgement, stored as given and never overwritten; training data derives from it.

    An undo within the project's window marks it retracted (it stays in the table) and gives
    the assignment back to the annotator.
    """

    class Kind(models.TextChoices):
        RANKING = "ranking", "Ranking"
        PAIRWISE = "pairwise", "Pairwise"
        RATING = "rating", "Rating"
        CORRECTION = "correction", "Correction"

    class Choice(models.TextChoices):
        A = "a", "A is better"
        B = "b", "B is better"
        TIE = "tie", "Tie"
        BOTH_BAD = "both_bad", "Both bad"

    assignment = models.ForeignKey(
        Assignment, on_delete=models.PROTECT, related_name="judgements"
    )
    item = models.ForeignKey(Item, on_delete=models.PROTECT, related_name="judgements")
    annotator = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="judgements"
    )
    # The kinds this judgement answers, in the order the project asked for them.
    kinds = models.JSONField(default=list)
    # Groups of candidate ids, best first; candidates in one group are tied. Pairwise choices
    # are stored here too (A better: [[a], [b]]; tie and both bad: [[a, b]]).
    ranking = models.JSONField(default=list)
    pairwise_choice = models.CharField(max_length=10, choices=Choice.choices, blank=True)
    # 1 = slightly better, 2 = much better; kept as a weight on the derived pair.
    pairwise_strength = models.PositiveSmallIntegerField(null=True, blank=True)
    # {candidate id (str): {dimension: score}}
    ratings = models.JSONField(default=dict, blank=True)
    correction = models.ForeignKey(
        Candidate, null=True, blank=True, on_delete=models.PROTECT, related_name="+",
        help_text="The edited response, saved as a new candidate whose parent is the original.",
    )
    flags = models.JSONField(default=list, blank=True)
    shown_order = models.JSONField(default=list)
    comment = models.TextField(blank=True)
    duration_ms = models.PositiveIntegerField(null=True, blank=True)
    client_uuid = models.UUIDField(unique=True, default=uuid.uuid4)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    retracted_at = models.DateTimeField(null=True, blank=True)
    # On a gold item: how much of the gold answer this judgement got right (0–1).
    gold_score = models.FloatField(null=True, blank=True)

    class Meta:
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(
                fields=["assignment"], condition=Q(retracted_at__isnull=True),
                name="judgement_one_live_per_assignment",
            )
        ]

    def __str__(self):
        return f"judgement {self.pk}"

    def preference_pairs(self):
        """Yield (chosen_id, rejected_id, weight) for every pair this judgement implies."""
        weight = float(self.pairwise_strength or 1)
        for chosen, rejected in ranking_pairs(self.ranking):
            yield chosen, rejected, weight
        if self.correction_id:
            yield self.correction_id, self.correction.parent_id, 1.0


def ranking_pairs(ranking):
    """Yield (better, worse) candidate-id pairs implied by groups best first (ties give none)."""
    for i, better in enumerate(ranking):
        for worse in ranking[i + 1 :]:
            for b in better:
                for w in worse:
                    yield b, w


def gold_score(gold, given):
    """Return the share of the gold answer's strict preferences the given ranking matches.

    Both are groups of candidate ids best first. Candidates the gold answer ties may be
    ordered either way; an annotator's tie where gold prefers one counts as a miss.
    """
    rank_of = rank_positions(given)
    gold_rank = rank_positions(gold)
    ids = sorted(gold_rank)
    total = matched = 0
    for x, a in enumerate(ids):
        for b in ids[x + 1 :]:
            want = pair_order(gold_rank, a, b)
            if not want:
                continue
            total += 1
            if a in rank_of and b in rank_of:
                matched += pair_order(rank_of, a, b) == want
    return matched / total if total else 1.0


class AnnotatorStanding(models.Model):
    """An annotator's gold record in one project: accuracy, flag and pause."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="standings")
    annotator = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="standings"
    )
    gold_judged = models.PositiveIntegerField(default=0)
    gold_score_sum = models.FloatField(default=0.0)
    flagged_at = models.DateTimeField(null=True, blank=True)
    paused = models.BooleanField(default=False)
    # Set when a manager resumes a paused annotator: gold before it no longer pauses them.
    resumed_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["project", "annotator"]
        constraints = [
            models.UniqueConstraint(
                fields=["project", "annotator"], name="standing_unique_annotator"
            )
        ]

    def __str__(self):
        return f"{self.annotator} in {self.project}"

    @property
    def gold_accuracy(self):
        return self.gold_score_sum / self.gold_judged if self.gold_judged else None

    def below_threshold(self):
        """Return whether enough gold was judged and the accuracy is under the project's bar."""
        project = self.project
        return (
            self.gold_judged >= project.gold_min_judged
            and self.gold_accuracy < project.gold_min_accuracy
        )


class Adjudication(models.Model):
    """A reviewer's answer for a disputed item; it exports instead of the item's judgements."""

    item = models.OneToOneField(Item, on_delete=models.CASCADE, related_name="adjudication")
    reviewer = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="adjudications"
    )
    # Groups of candidate ids best first, like Judgement.ranking.
    ranking = models.JSONField(default=list)
    comment = models.TextField(blank=True)
    made_gold = models.BooleanField(
        default=False, help_text="The adjudicated answer was also made a gold item."
    )
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now)

    def __str__(self):
        return f"adjudication of {self.item}"

    def preference_pairs(self):
        """Yield (chosen_id, rejected_id) for every ordered pair of the adjudicated ranking."""
        yield from ranking_pairs(self.ranking)


class DashboardCache(models.Model):
    """A project's dashboard figures as last computed (annotate.dashboards.compute)."""

    project = models.OneToOneField(Project, on_delete=models.CASCADE, related_name="dashboard")
    data = models.JSONField(default=dict)
    computed_at = models.DateTimeField(default=timezone.now)
    judgements = models.PositiveIntegerField(default=0)
    # The newest judgement the figures include: a newer one makes them stale.
    last_judgement_id = models.BigIntegerField(null=True, blank=True)
    refresh_requested_at = models.DateTimeField(null=True, blank=True)

    def __str__(self):
        return f"dashboard of {self.project}"


class ApiToken(models.Model):
    """A personal API token: only its SHA-256 digest is stored; it acts with its user's roles."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens"
    )
    name = models.CharField(max_length=100)
    # The first characters of the token, shown in the UI so a user can tell tokens apart.
    prefix = models.CharField(max_length=16, db_index=True)
    digest = models.CharField(max_length=64, unique=True)
    created_at = models.DateTimeField(default=timezone.now)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self):
        return f"{self.name} ({self.prefix}…)"

    @property
    def is_active(self):
        return self.revoked_at is None


class Conversation(models.Model):
    """A production conversation posted to the ingestion API, stored only after PII scrubbing.

    `messages` are the turns before the deployed model's reply; `reply` is that reply;
    `correction` a live agent's corrected reply. Every text field holds scrubbed text.
    """

    class Feedback(models.TextChoices):
        UP = "up", "Thumbs up"
        DOWN = "down", "Thumbs down"
        NONE = "", "None"

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="conversations")
    external_id = models.CharField(max_length=200)
    messages = models.JSONField(default=list)
    reply = models.TextField()
    model_name = models.CharField(max_length=300, blank=True)
    model_version = models.ForeignKey(
        "rlhf.ModelVersion", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    feedback = models.CharField(max_length=4, choices=Feedback.choices, blank=True)
    correction = models.TextField(blank=True)
    comment = models.TextField(blank=True)
    # How many replacements of each PII type scrubbing made (counts only, never the values).
    pii_counts = models.JSONField(default=dict, blank=True)
    prompt = models.ForeignKey(
        Prompt, null=True, blank=True, on_delete=models.SET_NULL, related_name="conversations"
    )
    item = models.ForeignKey(
        Item, null=True, blank=True, on_delete=models.SET_NULL, related_name="conversations"
    )
    received_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    received_at = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(
                fields=["project", "external_id"], name="conversation_unique_external_id"
            )
        ]

    def __str__(self):
        return self.external_id
