"""Simulated annotators: a programmatic oracle plus noise, judging through the human code path.

The oracles at the top are pure functions ``score(prompt_text, response_text) -> float``
(higher is better); the Django part below claims items with ``annotate.queue.claim_next`` and
stores answers with ``annotate.services.submit_judgement``, exactly as the work page does, so a
simulated run exercises the queue, leases, gold scoring, agreement and review like real work.

Noise model. Annotator i has a noise level n_i: all equal to ``noise``, or with
``noise_spread`` s > 0 spread evenly from ``noise - s`` to ``noise + s`` over the annotators
(clipped to [0, 1]). For every item an annotator flips one coin: with probability n_i the whole
answer is random (a uniformly random permutation for a ranking, A or B at random with a random
strength for a pairwise choice, ratings drawn uniformly from 1..scale), otherwise it follows the
oracle (candidates ordered by score, exact ties broken at random; pairwise strength 2 when the
scores differ by a whole criterion or more; ratings the score mapped linearly onto 1..scale).
Random answers never tie and never say "both bad", so every label orders every pair.

Consequences (checked by a Monte-Carlo test):
- ``noise_ceiling(n) = 1 - n/2``: a random answer orders a given pair like the oracle with
  probability 1/2 (true of a uniform permutation too), so a label matches the oracle with
  probability (1 - n) + n/2. No model trained on such labels can score above it on them.
- ``implied_alpha(n) = (1 - n)^2``: Krippendorff's nominal alpha over pair units (see there).

No correction is ever made (corrections are optional) and no flags are set.
"""

import hashlib
import random
import re
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from itertools import combinations
from typing import NamedTuple

# --------------------------------------------------------------------------------------
# Oracles (pure: no Django)
# --------------------------------------------------------------------------------------

WORD = re.compile(r"\S+")
# "sorry", "apology", "apologies", "apologise/ize(d)": the apology itself, negation ignored.
APOLOGY = re.compile(r"\b(?:sorry|apolog\w*)\b", re.IGNORECASE)
# Something the customer can do or will get: any one of these counts as a concrete next step.
NEXT_STEP = [
    # An offer of a route: "you can / could / may / will need to".
    re.compile(r"\byou (?:can|could|may|(?:will|'ll) need to)\b", re.IGNORECASE),
    # A polite instruction with a verb of action: "please reply / send / click / visit ...".
    re.compile(r"\bplease (?:reply|send|click|visit|call|contact|email|check|open|go|log in|"
               r"sign in|return|let us know|share|include|keep)\b", re.IGNORECASE),
    # A commitment with a deadline: "we will ... within" / "we'll ... within" (one sentence).
    re.compile(r"\bwe(?: will|'ll)\b[^.!?]{0,80}?\bwithin\b", re.IGNORECASE),
    # A sentence opening with an imperative verb of action: "Reply here ...", "Open NW-1 ...".
    re.compile(r"(?:^|[.!?:]\s+)(?:reply|send|click|visit|call|contact|email|check|open|go to|"
               r"log in|sign in|return|select|tap|follow|measure|print|attach)\b", re.IGNORECASE),
    # Something concrete to act on: an order number like NW-546793 ...
    re.compile(r"\b[A-Z]{2,}-\d{3,}\b"),
    # ... or a time frame like "3-5 business days", "24 hours".
    re.compile(r"\b\d+(?:\s*[-–]\s*\d+)?\s*(?:business |working )?(?:minutes?|hours?|days?|"
               r"weeks?)\b", re.IGNORECASE),
]
# Thanks and warmth.
THANKS = re.compile(r"\b(?:thanks?|thank you|appreciate|happy to help|glad to help|"
                    r"my pleasure)\b", re.IGNORECASE)
PLEASE = re.compile(r"\bplease\b", re.IGNORECASE)
# Dismissive or blaming phrases, and shouting ("!!", or 3+ upper-case words: case-sensitive).
RUDE = re.compile(r"\b(?:obviously|not rocket science|read (?:it|the)|just (?:use|read|do|"
                  r"wait)|stupid|your (?:own )?(?:fault|problem)|already told|calm down|"
                  r"whatever|deal with it|not our problem)\b|!!"
                  r"|(?-i:\b(?:[A-Z]{2,}\s+){2,}[A-Z]{2,}\b)",
                  re.IGNORECASE)
SHORT_WORDS = 80


def words(text):
    return len(WORD.findall(text))


def _tie_breaker(text):
    """Return a small number in (0, 0.5]: shorter is better, distinct texts rarely tie.

    Below half a criterion, so it only orders answers that meet the same criteria; a hash of
    the text separates answers of the same length.
    """
    digest = int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big") / 2**64
    return 0.499 / (1.0 + len(text) / 400.0) + 0.001 * digest


def apology_next_step(prompt_text, response_text):
    """Score 0–3.5: +1 apology, +1 concrete next step, +1 under 80 words, + tie-breaker."""
    text = response_text.strip()
    score = float(bool(APOLOGY.search(text)))
    score += any(p.search(text) for p in NEXT_STEP)
    score += words(text) < SHORT_WORDS
    return score + _tie_breaker(text)


def concise(prompt_text, response_text):
    """Score 0–3.5: fewer words is better (3 at one word, 1.5 at 20 words), + tie-breaker."""
    text = response_text.strip()
    return 3.0 * 20.0 / (19.0 + max(words(text), 1)) + _tie_breaker(text)


def polite(prompt_text, response_text):
    """Score 0–3.5: +1 thanks or warmth, +1 apology or "please", +1 nothing rude, + tie-breaker."""
    text = response_text.strip()
    score = float(bool(THANKS.search(text)))
    score += bool(APOLOGY.search(text) or PLEASE.search(text))
    score += not RUDE.search(text)
    return score + _tie_breaker(text)


class Oracle(NamedTuple):
    description: str
    score: Callable[[str, str], float]
    # Upper bound of the score: ratings map [0, top] linearly onto 1..scale.
    top: float = 3.5


ORACLES = {
    "apology-next-step": Oracle(
        "prefers an apology plus a concrete next step, under 80 words", apology_next_step
    ),
    "concise": Oracle("prefers fewer words", concise),
    "polite": Oracle("prefers thanks, an apology or please, and nothing rude", polite),
}
DEFAULT_ORACLE = "apology-next-step"


class UnknownOracle(ValueError):
    pass


def get_oracle(name):
    """Return the named oracle, or raise UnknownOracle listing the known names."""
    try:
        return ORACLES[name]
    except KeyError:
        raise UnknownOracle(
            f"Unknown oracle {name!r}; choose one of: {', '.join(sorted(ORACLES))}."
        ) from None


# --------------------------------------------------------------------------------------
# Noise model (pure)
# --------------------------------------------------------------------------------------


def noise_levels(noise, annotators, spread=0.0):
    """Return each annotator's noise: all `noise`, or evenly from noise - spread to + spread."""
    if not 0.0 <= noise <= 1.0:
        raise ValueError(f"noise must be between 0 and 1, not {noise}")
    if spread < 0:
        raise ValueError(f"noise spread must not be negative, not {spread}")
    if annotators < 1:
        raise ValueError("at least one annotator is needed")
    if annotators == 1 or spread == 0:
        return [float(noise)] * annotators
    step = 2.0 * spread / (annotators - 1)
    return [min(1.0, max(0.0, noise - spread + i * step)) for i in range(annotators)]


def noise_ceiling(noise):
    """Return the probability that a label with this noise orders a pair like the oracle."""
    return 1.0 - noise / 2.0


def implied_alpha(noise):
    """Return the Krippendorff's nominal alpha expected between annotators with this noise.

    The unit is one candidate pair in the order shown, the label which of the two came first
    in the answer. The app shuffles the shown order per assignment, so the oracle's label is
    first-better or second-better with probability 1/2 each: the categories are balanced and
    the expected disagreement is 1/2. Each label matches the oracle with p = 1 - n/2, so two
    annotators disagree with probability 2p(1 - p) and alpha = 1 - 2p(1-p) / (1/2)
    = 1 - 4p(1 - p) = (1 - n)^2. With a list of levels (every annotator labelling every unit)
    alpha averages (1 - n_i)(1 - n_j) over the pairs of annotators.
    """
    if isinstance(noise, Sequence):
        pairs = list(combinations(noise, 2))
        if not pairs:
            raise ValueError("alpha needs at least two annotators")
        return sum((1.0 - a) * (1.0 - b) for a, b in pairs) / len(pairs)
    return (1.0 - noise) ** 2


def oracle_order(scores, rng):
    """Return candidate ids best first by score, exact ties in random order."""
    return sorted(scores, key=lambda cid: (-scores[cid], rng.random()))


def judge_order(scores, noise, rng):
    """Return (order best first, was_random): a uniform permutation with probability noise."""
    if rng.random() < noise:
        # Shuffle a sorted copy, so the answer does not depend on the (unseeded) shown order.
        order = sorted(scores)
        rng.shuffle(order)
        return order, True
    return oracle_order(scores, rng), False


def to_rating(score, top, scale):
    """Map an oracle score in [0, top] linearly onto the Likert scale 1..scale."""
    return 1 + round((scale - 1) * min(max(score / top, 0.0), 1.0))


def answer_fields(kinds, shown, scores, noise, rng, dimensions=(), scale=5, top=3.5):
    """Return keyword arguments for annotate.services.Answer and whether they were random.

    `shown` is the candidate ids in the order shown (A, B for a pairwise item); `scores` the
    oracle's score per id.
    """
    order, noisy = judge_order(scores, noise, rng)
    fields = {}
    if "ranking" in kinds:
        fields["ranking"] = [[cid] for cid in order]
    if "pairwise" in kinds:
        a, _ = shown
        fields["pairwise_choice"] = "a" if order[0] == a else "b"
        gap = abs(scores[shown[0]] - scores[shown[1]])
        fields["pairwise_strength"] = rng.choice((1, 2)) if noisy else (2 if gap >= 1 else 1)
    if "rating" in kinds:
        if noisy:
            fields["ratings"] = {str(cid): {d: rng.randint(1, scale) for d in dimensions}
                                 for cid in sorted(shown)}
        else:
            fields["ratings"] = {str(cid): {d: to_rating(scores[cid], top, scale)
                                            for d in dimensions} for cid in shown}
    return fields, noisy


def duration_ms(n_candidates, noisy, rng):
    """Return a plausible time on task: ~6 s + ~5 s per candidate, log-normal; random is quick."""
    base = 6000 + 5000 * n_candidates
    if noisy:
        base *= 0.5
    return max(800, int(base * rng.lognormvariate(0.0, 0.4)))


# --------------------------------------------------------------------------------------
# Simulation through the real code path (Django)
# --------------------------------------------------------------------------------------


@dataclass
class SimulationResult:
    oracle: str
    judgements: int = 0
    gold_judgements: int = 0
    random_answers: int = 0
    per_annotator: dict = field(default_factory=dict)  # username -> judgements made
    noise: dict = field(default_factory=dict)  # username -> noise level
    paused: list = field(default_factory=list)  # usernames paused by low gold accuracy
    skipped: int = 0  # submissions refused (then skipped, so the item goes back)
    stopped: str = ""  # "none-left" (no annotator got an item) or "max-items"

    @property
    def noise_ceiling(self):
        levels = list(self.noise.values())
        return sum(map(noise_ceiling, levels)) / len(levels) if levels else None

    @property
    def implied_alpha(self):
        levels = list(self.noise.values())
        return implied_alpha(levels) if len(levels) > 1 else None


def simulated_annotators(project, n):
    """Create or reuse users sim-1..sim-n with the Annotator role, members where it matters."""
    from django.contrib.auth.models import Group, User

    from .roles import ANNOTATOR

    group, _ = Group.objects.get_or_create(name=ANNOTATOR)
    users = []
    for i in range(1, n + 1):
        user, created = User.objects.get_or_create(username=f"sim-{i}")
        if created:
            user.set_unusable_password()
            user.save(update_fields=["password"])
        user.groups.add(group)
        users.append(user)
    # An empty member list admits every annotator; otherwise the simulated ones must join it.
    if project.annotators.exists():
        project.annotators.add(*users)
    return users


def simulate(project, annotators=5, noise=0.2, oracle=DEFAULT_ORACLE, max_items=None, seed=0,
             noise_spread=0.0, progress=None):
    """Judge open items with oracle-plus-noise annotators through claim_next and submit_judgement.

    Annotators take turns: each claims one item and submits; one that gets nothing (queue
    done for them, or paused by low gold accuracy) drops out. Stops when nobody gets an item
    or after `max_items` judgements. `progress(result, username)` is called after each one.
    """
    from .models import Candidate
    from .queue import claim_next, is_paused
    from .services import Answer, SubmitError, skip_assignment, submit_judgement

    chosen = get_oracle(oracle)
    if max_items is not None and max_items < 0:
        raise ValueError("max_items must not be negative")
    levels = noise_levels(noise, annotators, noise_spread)
    rng = random.Random(seed)
    users = simulated_annotators(project, annotators)
    result = SimulationResult(
        oracle=oracle,
        per_annotator={u.username: 0 for u in users},
        noise={u.username: level for u, level in zip(users, levels, strict=True)},
    )
    scores = {}  # candidate id -> oracle score (a candidate belongs to one prompt)
    working = list(zip(users, levels, strict=True))
    while working:
        for user, level in list(working):
            if max_items is not None and result.judgements >= max_items:
                result.stopped = "max-items"
                return result
            assignment = claim_next(project, user, rng=rng)
            if assignment is None:
                working.remove((user, level))
                if is_paused(project, user):
                    result.paused.append(user.username)
                continue
            item = assignment.item
            shown = list(assignment.shown_order)
            missing = [cid for cid in shown if cid not in scores]
            if missing:
                prompt_text = item.prompt.last_user_message
                for cid, text in Candidate.objects.filter(pk__in=missing).values_list("id", "text"):
                    scores[cid] = chosen.score(prompt_text, text)
            fields, noisy = answer_fields(
                project.kinds_for(len(shown)), shown, {cid: scores[cid] for cid in shown},
                level, rng, dimensions=project.rating_dimensions, scale=project.rating_scale,
                top=chosen.top,
            )
            client_uuid = uuid.UUID(int=rng.getrandbits(128), version=4)
            try:
                submit_judgement(user, assignment.pk, Answer(**fields), client_uuid,
                                 duration_ms=duration_ms(len(shown), noisy, rng))
            except SubmitError as exc:
                # Not expected; give the item back rather than resume it forever.
                skip_assignment(user, assignment.pk, f"simulation: {exc}")
                result.skipped += 1
                continue
            result.judgements += 1
            result.gold_judgements += item.is_gold
            result.random_answers += noisy
            result.per_annotator[user.username] += 1
            if progress is not None:
                progress(result, user.username)
    result.stopped = "none-left"
    return result


def summary_lines(result):
    """Return the human-readable summary of a simulation, one line per entry."""
    lines = [
        f"{result.judgements} judgements ({result.gold_judgements} on gold items, "
        f"{result.random_answers} random) with oracle {result.oracle!r}; "
        f"stopped: {result.stopped}.",
    ]
    for name, count in result.per_annotator.items():
        paused = "  (paused: gold accuracy too low)" if name in result.paused else ""
        lines.append(f"  {name}: {count} judgements, noise {result.noise[name]:.2f}{paused}")
    if result.skipped:
        lines.append(f"  {result.skipped} submissions refused and skipped")
    if result.noise_ceiling is not None:
        lines.append(f"Noise ceiling (pair accuracy vs the oracle): {result.noise_ceiling:.3f}")
    if result.implied_alpha is not None:
        lines.append(f"Implied Krippendorff's alpha (nominal, pairs): {result.implied_alpha:.3f}")
    return lines
