"""The managers' figures for one project, computed in one pass over its judgements.

`compute(project)` reads every live judgement once (streamed, ordered by item) and returns
plain JSON-ready data: throughput, agreement over time (Krippendorff's alpha per day and
week, on candidate-pair preferences and per rubric dimension), label and score
distributions, flags, and a per-annotator table (median time, agreement with the others'
consensus, gold accuracy, position and length bias). `refresh(project)` stores it in
DashboardCache, so the page reads one row however many judgements there are; a beat task
refreshes projects with new judgements, and small projects are refreshed on view.

Reliability data for alpha: a unit is one (item, candidate pair) for rankings and pairwise
choices, valued -1/0/+1 (first better / tie / second better), nominal; for ratings a unit is
one (item, candidate) per dimension, interval. Alpha does not depend on who the coders are,
only on the values within units, so the matrix rows are "the k-th judgement of the unit",
never one row per annotator (a million judgements stay a few arrays).
"""

import math
import time
from collections import Counter, defaultdict
from datetime import timedelta
from itertools import combinations

import numpy as np
from django.contrib.auth.models import User
from django.db.models import Count, Sum
from django.db.models.functions import Length
from django.utils import timezone

from . import agreement
from .consensus import model_leaderboard
from .models import Candidate, DashboardCache, Item, Judgement, ReviewStatus

# Projects with at most this many live judgements are recomputed when the page is opened
# and the figures are stale; bigger ones are refreshed by the worker.
INLINE_LIMIT = 20_000
MAX_DAYS = 180


def _alpha(values, level):
    """Alpha of a K x U matrix, or None with no pairable data (no error on a quiet day)."""
    if values.shape[1] == 0:
        return None
    try:
        alpha = agreement.krippendorff_alpha(values, level=level)
    except ValueError:
        return None
    return None if alpha is None or math.isnan(alpha) else round(float(alpha), 4)


class _Units:
    """Reliability data collected unit by unit: values per slot, plus each unit's bucket."""

    def __init__(self):
        self.values = []   # list of lists (one per unit)
        self.day = []      # the unit's day (its item's last judgement)

    def add(self, values, day):
        if len(values) >= 2:
            self.values.append(values)
            self.day.append(day)

    def matrix(self):
        width = max((len(v) for v in self.values), default=0)
        out = np.full((max(width, 2), len(self.values)), np.nan)
        for u, values in enumerate(self.values):
            out[: len(values), u] = values
        return out

    def series(self, level, bucket):
        """Return [{"period", "alpha", "items", "units"}] per bucket of the units' days."""
        if not self.values:
            return []
        matrix = self.matrix()
        keys = np.array([bucket(d) for d in self.day])
        out = []
        for key in sorted(set(keys)):
            mask = keys == key
            out.append({"period": key, "alpha": _alpha(matrix[:, mask], level),
                        "units": int(mask.sum())})
        return out


def _week(day):
    monday = day - timedelta(days=day.weekday())
    return monday.isoformat()


def _pair_value(positions, a, b):
    if a not in positions or b not in positions:
        return None
    return float(agreement.pair_order(positions, a, b))


def compute(project, now=None):
    """Return the project's dashboard figures as JSON-ready data."""
    started = time.monotonic()
    now = now or timezone.now()
    dims = list(project.rating_dimensions or []) if "rating" in project.judgement_kinds else []
    lengths = dict(
        Candidate.objects.filter(prompt__project=project)
        .annotate(n=Length("text")).values_list("id", "n").iterator(chunk_size=20_000)
    )
    names = dict(User.objects.values_list("id", "username"))

    per_day = Counter()
    per_day_items = defaultdict(set)
    per_hour = Counter()
    per_annotator_day = Counter()
    hour_since = now - timedelta(hours=48)
    choices = Counter()
    best_position = Counter()
    rating_hist = {d: Counter() for d in dims}
    flags = Counter()
    durations = defaultdict(list)
    counts = Counter()
    flags_by = Counter()
    gold = defaultdict(list)
    pair_units = _Units()
    rating_units = {d: _Units() for d in dims}
    item_day = {}
    consensus_items = []
    rankings_per_item = []
    bias_records = []

    def finish(item_id, group):
        if not group:
            return
        day = max(j["day"] for j in group)
        # Items judged by one annotator say nothing about agreement.
        if len(group) < 2:
            return
        item_day[item_id] = day
        positions = [agreement.rank_positions(j["ranking"]) for j in group]
        cands = sorted({c for j in group for c in j["shown"]})
        for a, b in combinations(cands, 2):
            values = [v for p in positions if (v := _pair_value(p, a, b)) is not None]
            pair_units.add(values, day)
        for d in dims:
            for c in cands:
                scores = [
                    float(s) for j in group
                    if (s := (j["ratings"].get(str(c)) or {}).get(d)) is not None
                ]
                rating_units[d].add(scores, day)
        rankings_per_item.append([j["ranking"] for j in group if j["ranking"]])
        consensus_items.append({
            j["annotator"]: frozenset(j["ranking"][0]) for j in group if j["ranking"]
        })

    rows = (
        Judgement.objects.filter(item__project=project, retracted_at__isnull=True)
        .order_by("item_id", "id")
        .values_list("item_id", "annotator_id", "created_at", "ranking", "pairwise_choice",
                     "ratings", "flags", "shown_order", "duration_ms", "gold_score",
                     "item__is_gold")
        .iterator(chunk_size=5000)
    )
    current, group = None, []
    total = 0
    for (item_id, annotator, created, ranking, choice, ratings, flag_list, shown,
         duration, gold_score, is_gold) in rows:
        total += 1
        local = timezone.localtime(created)
        day = local.date()
        per_day[day] += 1
        per_day_items[day].add(item_id)
        per_annotator_day[(day, annotator)] += 1
        if created >= hour_since:
            per_hour[local.replace(minute=0, second=0, microsecond=0)] += 1
        counts[annotator] += 1
        if duration:
            durations[annotator].append(duration)
        for f in flag_list or []:
            flags[f] += 1
            flags_by[annotator] += 1
        if choice:
            choices[choice] += 1
        for scores in (ratings or {}).values():
            for d, v in scores.items():
                if d in rating_hist:
                    rating_hist[d][int(v)] += 1
        if gold_score is not None:
            gold[annotator].append(gold_score)
        if ranking and shown and len(ranking[0]) == 1 and ranking[0][0] in shown:
            best_position[shown.index(ranking[0][0]) + 1] += 1
        if is_gold:
            continue
        if item_id != current:
            finish(current, group)
            current, group = item_id, []
        group.append({"annotator": annotator, "ranking": ranking or [], "ratings": ratings or {},
                      "shown": shown or [], "day": day})
        if ranking and shown:
            top = ranking[0]
            bias_records.append({
                "annotator": annotator, "item": item_id, "shown": shown,
                "chosen": top[0] if len(top) == 1 else None,
                # One shared id -> length mapping for every record (length_bias looks ids up).
                "lengths": lengths,
            })
    finish(current, group)

    # Agreement over time.
    day_key = lambda d: d.isoformat()  # noqa: E731
    agreement_series = {
        "day": {"pairs": pair_units.series("nominal", day_key)},
        "week": {"pairs": pair_units.series("nominal", _week)},
    }
    for d in dims:
        agreement_series["day"][d] = rating_units[d].series("interval", day_key)
        agreement_series["week"][d] = rating_units[d].series("interval", _week)
    items_per_period = {"day": Counter(), "week": Counter()}
    for day in item_day.values():
        items_per_period["day"][day.isoformat()] += 1
        items_per_period["week"][_week(day)] += 1
    for period, series in agreement_series.items():
        for points in series.values():
            for point in points:
                point["items"] = items_per_period[period][point["period"]]
    overall = {"pairs": _alpha(pair_units.matrix(), "nominal") if pair_units.values else None}
    for d in dims:
        units = rating_units[d]
        overall[d] = _alpha(units.matrix(), "interval") if units.values else None

    loo = agreement.leave_one_out_agreement(consensus_items)
    percent, comparisons = agreement.pairwise_percent_agreement(rankings_per_item)
    position = agreement.position_bias(bias_records) if bias_records else None
    length = agreement.length_bias(bias_records) if bias_records else None

    annotators = []
    for user_id in sorted(counts, key=lambda u: (-counts[u], names.get(u, ""))):
        mine = loo["annotators"].get(user_id, {})
        pos = (position or {}).get("annotators", {}).get(user_id, {})
        lng = (length or {}).get("annotators", {}).get(user_id, {})
        golds = gold.get(user_id, [])
        annotators.append({
            "annotator": names.get(user_id, str(user_id)),
            "judgements": counts[user_id],
            "median_seconds": (round(float(np.median(durations[user_id])) / 1000, 1)
                               if durations.get(user_id) else None),
            "agreement": _round(mine.get("agreement")),
            "agreement_items": mine.get("items", 0),
            "gold_accuracy": _round(sum(golds) / len(golds)) if golds else None,
            "gold_judged": len(golds),
            "first_shown_rate": _round(pos.get("rate")),
            "first_shown_p": _round(pos.get("p_value")),
            "longer_rate": _round(lng.get("rate")),
            "longer_p": _round(lng.get("p_value")),
            "flags": flags_by[user_id],
        })

    days = sorted(per_day)[-MAX_DAYS:]
    recent_days = set(days[-30:])
    items = Item.objects.filter(project=project, is_gold=False)
    review = dict(
        Item.objects.filter(project=project).exclude(review_status=ReviewStatus.NONE)
        .values_list("review_status").annotate(n=Count("id")).order_by()
    )
    gold_all = [s for scores in gold.values() for s in scores]
    return {
        "queue": project_stats(project),
        "computed_at": now.isoformat(),
        "seconds": round(time.monotonic() - started, 3),
        "judgements": total,
        "annotator_count": len(counts),
        "items_with_overlap": len(item_day),
        "overall": overall,
        "pool_agreement": _round(loo["pool"]["agreement"]),
        "pairwise": {"agreement": _round(percent), "comparisons": comparisons,
                     "items": len(rankings_per_item)},
        "pool_gold_accuracy": _round(sum(gold_all) / len(gold_all)) if gold_all else None,
        "review_pending": review.get(ReviewStatus.PENDING, 0),
        "review_resolved": review.get(ReviewStatus.RESOLVED, 0),
        "open_items": items.filter(open_slots__gt=0).count(),
        "dimensions": dims,
        "per_day": [{"day": d.isoformat(), "judgements": per_day[d],
                     "items": len(per_day_items[d])} for d in days],
        "per_hour": [{"hour": h.isoformat(timespec="minutes"), "judgements": n}
                     for h, n in sorted(per_hour.items())],
        "per_annotator_day": [
            {"day": d.isoformat(), "annotator": names.get(u, str(u)), "judgements": n}
            for (d, u), n in sorted(per_annotator_day.items(),
                                    key=lambda kv: (kv[0][0], names.get(kv[0][1], "")))
            if d in recent_days
        ],
        "agreement": agreement_series,
        "choices": [{"choice": c, "judgements": choices[c]}
                    for c in ("a", "b", "tie", "both_bad") if choices[c]],
        "best_position": [{"position": p, "judgements": n}
                          for p, n in sorted(best_position.items())],
        "ratings": [{"dimension": d, "score": s, "count": rating_hist[d][s]}
                    for d in dims for s in sorted(rating_hist[d])],
        "flags": [{"flag": f, "count": n} for f, n in flags.most_common()],
        "annotators": annotators,
        "bias_pool": {
            "first_shown_rate": _round((position or {}).get("pool", {}).get("rate")),
            "first_shown_chance": _round((position or {}).get("pool", {}).get("chance")),
            "first_shown_consensus": _round(
                (position or {}).get("pool", {}).get("consensus_rate")),
            "first_shown_p": _round((position or {}).get("pool", {}).get("p_value")),
            "longer_rate": _round((length or {}).get("pool", {}).get("rate")),
            "longer_chance": _round((length or {}).get("pool", {}).get("chance")),
            "longer_consensus": _round((length or {}).get("pool", {}).get("consensus_rate")),
            "longer_p": _round((length or {}).get("pool", {}).get("p_value")),
        },
        "leaderboard": _leaderboard(project),
    }


def project_stats(project):
    """Return the queue counts the project page and dashboard show."""
    items = Item.objects.filter(project=project, is_gold=False)
    totals = items.aggregate(n=Count("id"), judged=Sum("judgement_count"))
    wanted = (totals["n"] or 0) * project.overlap
    judged = totals["judged"] or 0
    return {
        "prompts": project.prompts.count(),
        "candidates": Candidate.objects.filter(prompt__project=project).count(),
        "items": totals["n"] or 0,
        "judgements": judged,
        "wanted": wanted,
        "percent": int(100 * min(judged, wanted) / wanted) if wanted else 0,
        "complete_items": items.filter(judgement_count__gte=project.overlap).count(),
        "gold_items": Item.objects.filter(project=project, is_gold=True).count(),
    }


def _round(value, digits=4):
    return None if value is None else round(float(value), digits)


def _leaderboard(project):
    return model_leaderboard(project, rounds=500, seed=0)


def latest_judgement_id(project):
    return (
        Judgement.objects.filter(item__project=project)
        .order_by("-id").values_list("id", flat=True).first()
    )


def refresh(project):
    """Recompute and store the project's figures; return the cache row."""
    last_id = latest_judgement_id(project)
    data = compute(project)
    cache, _ = DashboardCache.objects.update_or_create(
        project=project,
        defaults={"data": data, "computed_at": timezone.now(), "judgements": data["judgements"],
                  "last_judgement_id": last_id, "refresh_requested_at": None},
    )
    return cache


def is_stale(project, cache):
    """Return whether judgements arrived since the figures were computed.

    An undo alone does not make the figures stale (the re-judgement that follows does, and
    the beat task recomputes every project with news).
    """
    return cache is None or latest_judgement_id(project) != cache.last_judgement_id
