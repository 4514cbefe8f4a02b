"""Preference pairs, per-item consensus and the model leaderboard from a project's judgements.

Read-only glue between the database and annotate.aggregation (pure numpy). Every function
returns plain dicts with JSON-friendly values, ready for a template, a CSV or a JSON cache.

Which judgements count: live ones (not retracted) on items that are neither gold (their known
answer is the label, and the judgements on them measure annotators) nor adjudicated (the
reviewer's answer replaces them), as in services.preference_rows.
"""

from collections import defaultdict
from itertools import groupby

from .aggregation import (
    DEFAULT_ALPHA,
    annotator_weights,
    bootstrap_bt,
    bradley_terry,
    bt_consensus,
    majority_consensus,
    ranking_to_pairs,
    to_elo,
)
from .agreement import leave_one_out_agreement
from .models import Adjudication, AnnotatorStanding, Candidate, Judgement

# Leaderboard names for candidates that no model version produced, by Candidate.origin.
ORIGIN_NAMES = {
    "import": "imported",
    "human": "human",
    "correction": "corrections",
    "model": "model (no version)",
}
WEIGHTINGS = (None, "reliability")


def _live_judgements(project):
    return Judgement.objects.filter(
        item__project=project, retracted_at__isnull=True, item__is_gold=False,
        item__adjudication__isnull=True,
    )


def annotator_reliability(project, floor=0.1):
    """Return {annotator id: {"gold_accuracy", "gold_judged", "agreement", "weight"}}.

    Gold accuracy counts once the annotator has judged the project's gold_min_judged gold
    items (the bar after which it is held against them); agreement is how often their top
    choice matches the majority top choice of the other annotators of the same non-gold item
    (annotate.agreement.leave_one_out_agreement, as on the dashboard). The weight is
    aggregation.annotator_weights of the two: accuracy, else agreement, else 1, in [floor, 1].
    """
    standings = {
        s.annotator_id: s for s in AnnotatorStanding.objects.filter(project=project)
    }
    rows = (
        Judgement.objects.filter(item__project=project, retracted_at__isnull=True,
                                 item__is_gold=False)
        .order_by("item_id", "id")
        .values_list("item_id", "annotator_id", "ranking")
    )
    items = []
    for _, group in groupby(rows.iterator(chunk_size=5000), key=lambda row: row[0]):
        labels = {
            annotator: frozenset(ranking[0]) for _, annotator, ranking in group if ranking
        }
        if labels:
            items.append(labels)
    agreement = {
        annotator: stats["agreement"]
        for annotator, stats in leave_one_out_agreement(items)["annotators"].items()
    }
    accuracy = {
        annotator: standing.gold_accuracy
        if standing.gold_judged >= project.gold_min_judged else None
        for annotator, standing in standings.items()
    }
    weights = annotator_weights(accuracy, agreement, floor=floor)
    return {
        annotator: {
            "gold_accuracy": accuracy.get(annotator),
            "gold_judged": standings[annotator].gold_judged if annotator in standings else 0,
            "agreement": agreement.get(annotator),
            "weight": weight,
        }
        for annotator, weight in weights.items()
    }


def _weights_for(project, weighting):
    """Return a function annotator id -> weight for the given weighting option."""
    if weighting is None:
        return lambda annotator: 1.0
    if weighting == "reliability":
        table = {a: r["weight"] for a, r in annotator_reliability(project).items()}
    elif hasattr(weighting, "get"):
        table = {a: float(w) for a, w in weighting.items()}
    else:
        raise ValueError(
            f"weighting must be None, 'reliability' or a mapping annotator id -> weight; "
            f"got {weighting!r}"
        )
    return lambda annotator: table.get(annotator, 1.0)


def preference_pairs(project, weighting=None):
    """Yield one dict per preference pair implied by the project's live judgements.

    Rankings (and pairwise choices, stored as rankings) give every ordered pair; candidates a
    judgement ties (a tied group, a pairwise "tie" or "both bad") give a row with "tie": True,
    chosen/rejected then just the two candidates in the order shown in the ranking. A pairwise
    strength (1 slightly, 2 much better) is the row's "weight"; everything else weighs 1. A
    correction gives edited ≻ original (kind "correction"). Ratings give no pairs.

    weighting: None (every "annotator_weight" is 1), "reliability" (annotator_reliability's
    weight) or a mapping annotator id -> weight (others get 1). A consumer that wants one
    number per pair uses weight * annotator_weight.

    Keys: judgement_id, item_id, prompt_id, annotator_id, kind ("ranking", "pairwise",
    "correction"), choice (the pairwise choice, else ""), chosen, rejected (candidate ids),
    tie, weight, annotator_weight. Rows come in judgement id order.
    """
    weight_of = _weights_for(project, weighting)
    rows = (
        _live_judgements(project)
        .order_by("id")
        .values_list("id", "item_id", "item__prompt_id", "annotator_id", "ranking",
                     "pairwise_choice", "pairwise_strength", "correction_id",
                     "correction__parent_id")
    )
    for (judgement_id, item_id, prompt_id, annotator, ranking, choice, strength,
         correction, original) in rows.iterator(chunk_size=5000):
        base = {
            "judgement_id": judgement_id,
            "item_id": item_id,
            "prompt_id": prompt_id,
            "annotator_id": annotator,
            "annotator_weight": weight_of(annotator),
        }
        kind = "pairwise" if choice else "ranking"
        weight = float(strength or 1)
        for first, second, tie in ranking_to_pairs(ranking or []):
            yield {**base, "kind": kind, "choice": choice, "chosen": first,
                   "rejected": second, "tie": tie, "weight": weight}
        if correction and original:
            yield {**base, "kind": "correction", "choice": "", "chosen": correction,
                   "rejected": original, "tie": False, "weight": 1.0}


def item_consensus(project, weighting=None, alpha=DEFAULT_ALPHA):
    """Return one dict per judged non-gold item: majority and Bradley–Terry consensus.

    Each live judgement with a ranking votes with weight pairwise strength (1 if none) times
    the annotator's weight under `weighting` (as in preference_pairs). Corrections are left
    out: the edited text is not one of the item's candidates.

    Keys: item_id, prompt_id, judgements, majority (aggregation.majority_consensus: top,
    tied, votes, share, rankings), bt (aggregation.bt_consensus: ranking, scores, pairs,
    rankings) and adjudication (the reviewer's ranking, or None; such an item exports that
    instead of this consensus).
    """
    weight_of = _weights_for(project, weighting)
    adjudicated = dict(
        Adjudication.objects.filter(item__project=project).values_list("item_id", "ranking")
    )
    rows = (
        Judgement.objects.filter(item__project=project, retracted_at__isnull=True,
                                 item__is_gold=False)
        .order_by("item_id", "id")
        .values_list("item_id", "item__prompt_id", "annotator_id", "ranking",
                     "pairwise_strength")
    )
    result = []
    for item_id, group in groupby(rows.iterator(chunk_size=5000), key=lambda row: row[0]):
        group = [row for row in group if row[3]]
        if not group:
            continue
        rankings = [row[3] for row in group]
        weights = [float(row[4] or 1) * weight_of(row[2]) for row in group]
        result.append({
            "item_id": item_id,
            "prompt_id": group[0][1],
            "judgements": len(group),
            "majority": majority_consensus(rankings, weights),
            "bt": bt_consensus(rankings, weights, alpha=alpha),
            "adjudication": adjudicated.get(item_id),
        })
    return result


def _players(project):
    """Return {candidate id: (player key, display name, model version id, origin)}."""
    rows = Candidate.objects.filter(prompt__project=project).values_list(
        "id", "model_version_id", "model_version__name", "origin"
    )
    players = {}
    for cid, version, name, origin in rows.iterator(chunk_size=20_000):
        if version is not None:
            players[cid] = (f"model:{version}", name, version, origin)
        else:
            players[cid] = (f"origin:{origin}", ORIGIN_NAMES.get(origin, origin), None, origin)
    return players


def model_leaderboard(project, rounds=1000, seed=0, *, weighting=None, level=0.95,
                      include_corrections=False, alpha=DEFAULT_ALPHA):
    """Return the project's model versions ranked by Bradley–Terry strength, with intervals.

    Players are model versions (Candidate.model_version); candidates without one are grouped
    by origin ("imported", "human", ...). Every preference pair between candidates of two
    different players is one comparison (a tie is half a win each way); pairs within a player
    say nothing and are skipped. Correction pairs are left out unless include_corrections:
    an edit beats its original by construction. Pairs weigh weight * annotator_weight as in
    preference_pairs (pairwise strength, optional annotator weighting). Intervals are
    percentile bootstrap intervals resampling whole judgements (their pairs are not
    independent), `rounds` rounds from `seed`; rounds=0 skips them (ci_* are None).

    Returns a list, strongest first, of {"rank", "model", "key", "model_version_id", "origin",
    "strength" (log-strength, mean 0 over the players), "ci_low", "ci_high", "elo",
    "elo_low", "elo_high" (the same on Chatbot Arena's Elo-like scale), "wins", "losses",
    "ties", "comparisons", "win_rate" ((wins + ties / 2) / comparisons)}. No comparison
    between two players gives [].
    """
    players = _players(project)
    keys, names, index = [], {}, {}
    pairs, weights, ties, groups = [], [], [], []
    record = defaultdict(lambda: {"wins": 0, "losses": 0, "ties": 0})
    for row in preference_pairs(project, weighting):
        if row["kind"] == "correction" and not include_corrections:
            continue
        first, second = players.get(row["chosen"]), players.get(row["rejected"])
        if first is None or second is None or first[0] == second[0]:
            continue
        for player in (first, second):
            if player[0] not in index:
                index[player[0]] = len(keys)
                keys.append(player[0])
                names[player[0]] = player
        pairs.append((index[first[0]], index[second[0]]))
        weights.append(row["weight"] * row["annotator_weight"])
        ties.append(row["tie"])
        groups.append(row["judgement_id"])
        if row["tie"]:
            record[first[0]]["ties"] += 1
            record[second[0]]["ties"] += 1
        else:
            record[first[0]]["wins"] += 1
            record[second[0]]["losses"] += 1
    if not pairs:
        return []
    n = len(keys)
    if rounds:
        fit = bootstrap_bt(pairs, n, weights, rounds=rounds, seed=seed, level=level,
                           groups=groups, is_tie=ties, alpha=alpha)
        strength, low, high = fit["estimate"], fit["lower"], fit["upper"]
    else:
        strength = bradley_terry(pairs, n, weights, is_tie=ties, alpha=alpha)
        low = high = None
    elo = to_elo(strength)
    elo_low = to_elo(low) if low is not None else None
    elo_high = to_elo(high) if high is not None else None
    board = []
    for i, key in enumerate(keys):
        _, name, version, origin = names[key]
        counts = record[key]
        comparisons = counts["wins"] + counts["losses"] + counts["ties"]
        board.append({
            "model": name,
            "key": key,
            "model_version_id": version,
            "origin": origin if version is None else "model",
            "strength": float(strength[i]),
            "ci_low": float(low[i]) if low is not None else None,
            "ci_high": float(high[i]) if high is not None else None,
            "elo": float(elo[i]),
            "elo_low": float(elo_low[i]) if elo_low is not None else None,
            "elo_high": float(elo_high[i]) if elo_high is not None else None,
            **counts,
            "comparisons": comparisons,
            "win_rate": (counts["wins"] + counts["ties"] / 2) / comparisons,
        })
    board.sort(key=lambda row: (-row["strength"], row["model"]))
    for rank, row in enumerate(board, 1):
        row["rank"] = rank
    return [{"rank": row.pop("rank"), **row} for row in board]
