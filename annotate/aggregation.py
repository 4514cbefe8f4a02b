"""Aggregate preferences: Bradley–Terry strengths, bootstrap intervals, per-item consensus.

Pure numpy (scipy only for large or disconnected comparison graphs): no Django imports, so it
runs in notebooks, benchmarks and workers alike. annotate/consensus.py feeds it the project's
judgements.

The Bradley–Terry model says item i beats item j with probability
``sigmoid(theta_i - theta_j)``. ``bradley_terry`` returns the maximum a posteriori log-strengths
under a Gaussian ("ridge") prior: it minimises

    sum_k w_k * log(1 + exp(-(theta[winner_k] - theta[loser_k])))  +  alpha * sum_i theta_i**2

which is exactly the objective of ``choix.opt_pairwise(n, data, alpha)`` (for unit weights), so
the result can be checked against that package. With the default tiny ``alpha`` (choix's
default, 1e-6) the fit is the maximum-likelihood one wherever that exists, and an item that
never lost (or a component of the comparison graph that never played the rest) still gets a
large but finite strength instead of an infinite one. The penalty also centres the solution:
the likelihood's gradient sums to zero, so at the optimum ``2 * alpha * sum(theta) = 0`` and the
returned strengths have mean 0. ``alpha=0`` gives the plain maximum-likelihood estimate, which
exists only when the comparison graph is strongly connected (every item beat, through some
chain, every other); otherwise a ValueError says so.

It is solved by Newton's method with a backtracking line search on the convex objective (a
weighted graph Laplacian plus ``2 * alpha`` on the diagonal is the Hessian), restricted to
mean-zero steps; it converges in a handful of iterations where Hunter's MM algorithm needs
hundreds, and handles weights and half wins without change.

Ties: a pair marked as a tie counts as half a win for each side (``ties="half"``, the usual
convention, e.g. Chatbot Arena before its tie-aware model; it pulls the two strengths
together), or is dropped (``ties="ignore"``).
"""

import math
import warnings
from collections.abc import Mapping

import numpy as np

DEFAULT_ALPHA = 1e-6
TIE_MODES = ("half", "ignore")
# Up to this many items the Newton system is solved densely; beyond it with scipy.sparse.
_DENSE_ITEMS = 600


# --------------------------------------------------------------------------------------
# Input checking and the directed-pair representation
# --------------------------------------------------------------------------------------


def _as_pairs(pairs, n):
    """Return (pairs as an (m, 2) int array, n) after checking indices."""
    arr = np.asarray(pairs)
    if arr.size == 0:
        raise ValueError("no pairs: Bradley–Terry needs at least one comparison")
    if arr.ndim != 2 or arr.shape[1] != 2:
        raise ValueError(f"pairs must be (winner, loser) index pairs, shape (m, 2); "
                         f"got {arr.shape}")
    if not np.issubdtype(arr.dtype, np.integer) and not (
        np.issubdtype(arr.dtype, np.number)
        and np.all(np.isfinite(arr))
        and np.all(arr == np.round(arr))
    ):
        raise ValueError("pairs must hold integer item indices")
    arr = arr.astype(np.int64)
    if arr.min() < 0:
        raise ValueError("item indices must be >= 0")
    if n is None:
        n = int(arr.max()) + 1
    elif arr.max() >= n:
        raise ValueError(f"item index {int(arr.max())} out of range for n={n}")
    if np.any(arr[:, 0] == arr[:, 1]):
        row = int(np.flatnonzero(arr[:, 0] == arr[:, 1])[0])
        raise ValueError(f"pair {row} compares item {int(arr[row, 0])} with itself")
    return arr, int(n)


def _as_vector(values, m, name, dtype=float):
    if values is None:
        return None
    vec = np.asarray(values, dtype=dtype)
    if vec.shape != (m,):
        raise ValueError(f"{name} must have one entry per pair ({m}); got shape {vec.shape}")
    return vec


def _directed(pairs, n, weights, is_tie, ties):
    """Return (winners, losers, weights, source row) with every tie split into two half wins."""
    if ties not in TIE_MODES:
        raise ValueError(f"ties must be one of {TIE_MODES}; got {ties!r}")
    arr, n = _as_pairs(pairs, n)
    m = len(arr)
    w = _as_vector(weights, m, "weights")
    if w is None:
        w = np.ones(m)
    elif not np.all(np.isfinite(w)) or np.any(w < 0):
        raise ValueError("weights must be finite and >= 0")
    tie = _as_vector(is_tie, m, "is_tie", dtype=bool)
    rows = np.arange(m)
    if tie is None or not tie.any():
        return arr[:, 0], arr[:, 1], w, rows, n
    strict = ~tie
    if ties == "ignore":
        return arr[strict, 0], arr[strict, 1], w[strict], rows[strict], n
    winners = np.concatenate([arr[strict, 0], arr[tie, 0], arr[tie, 1]])
    losers = np.concatenate([arr[strict, 1], arr[tie, 1], arr[tie, 0]])
    weight = np.concatenate([w[strict], w[tie] / 2, w[tie] / 2])
    source = np.concatenate([rows[strict], rows[tie], rows[tie]])
    return winners, losers, weight, source, n


def _aggregate_keys(winners, losers, n):
    """Return (unique winners, unique losers, inverse) over distinct directed pairs."""
    keys = winners * np.int64(n) + losers
    unique, inverse = np.unique(keys, return_inverse=True)
    return unique // n, unique % n, inverse.reshape(-1)


# --------------------------------------------------------------------------------------
# The fit
# --------------------------------------------------------------------------------------


def _sigmoid_neg(d):
    """Return 1 / (1 + exp(d)) without overflow."""
    return np.exp(-np.logaddexp(0.0, d))


def _objective(theta, a, b, w, alpha):
    return float(np.dot(w, np.logaddexp(0.0, theta[b] - theta[a])) + alpha * np.dot(theta, theta))


def _newton_step(theta, a, b, w, alpha, n):
    """Return (gradient, mean-zero Newton direction) at theta."""
    p = _sigmoid_neg(theta[a] - theta[b])  # probability the recorded loser would win
    wp = w * p
    grad = 2 * alpha * theta - np.bincount(a, wp, n) + np.bincount(b, wp, n)
    s = w * p * (1 - p)
    diag = np.bincount(a, s, n) + np.bincount(b, s, n) + 2 * alpha
    # Bordered system [[H, 1], [1', 0]]: the step keeps sum(theta) fixed, which also makes
    # the Laplacian's constant null vector harmless when alpha is 0.
    if n <= _DENSE_ITEMS:
        k = np.zeros((n + 1, n + 1))
        np.add.at(k, (a, b), -s)
        np.add.at(k, (b, a), -s)
        k[np.arange(n), np.arange(n)] += diag
        k[n, :n] = k[:n, n] = 1.0
        rhs = np.append(-grad, 0.0)
        try:
            step = np.linalg.solve(k, rhs)[:n]
        except np.linalg.LinAlgError:
            step = np.linalg.lstsq(k, rhs, rcond=None)[0][:n]
    else:
        from scipy import sparse
        from scipy.sparse.linalg import spsolve

        idx = np.arange(n)
        border = np.full(n, n)
        rows = np.concatenate([a, b, idx, idx, border])
        cols = np.concatenate([b, a, idx, border, idx])
        vals = np.concatenate([-s, -s, diag, np.ones(n), np.ones(n)])
        k = sparse.csc_matrix((vals, (rows, cols)), shape=(n + 1, n + 1))
        step = spsolve(k, np.append(-grad, 0.0))[:n]
    return grad, step


def _check_connected(a, b, w, n):
    from scipy import sparse
    from scipy.sparse.csgraph import connected_components

    live = w > 0
    graph = sparse.csr_matrix((np.ones(int(live.sum())), (a[live], b[live])), shape=(n, n))
    count, _ = connected_components(graph, directed=True, connection="strong")
    if count != 1:
        raise ValueError(
            "the maximum-likelihood strengths are infinite: the comparison graph is not strongly "
            f"connected ({count} components; some item never lost or never won against the "
            "rest). Use alpha > 0."
        )


def _fit(n, a, b, w, alpha, theta0, max_iter, tol):
    """Minimise the penalised negative log-likelihood over aggregated directed pairs."""
    if alpha == 0:
        _check_connected(a, b, w, n)
    theta = np.zeros(n) if theta0 is None else np.array(theta0, dtype=float)
    theta -= theta.mean()
    value = _objective(theta, a, b, w, alpha)
    for _ in range(max_iter):
        grad, step = _newton_step(theta, a, b, w, alpha, n)
        slope = float(np.dot(grad, step))
        if slope >= 0:  # already at the optimum to machine precision
            break
        t = 1.0
        while True:
            candidate = theta + t * step
            new_value = _objective(candidate, a, b, w, alpha)
            if new_value <= value + 1e-4 * t * slope or t < 1e-12:
                break
            t /= 2
        theta, value = candidate, new_value
        if np.max(np.abs(t * step)) < tol:
            break
    else:
        warnings.warn(
            f"Bradley–Terry fit did not converge in {max_iter} iterations", RuntimeWarning,
            stacklevel=3,
        )
    return theta - theta.mean()


def bradley_terry(pairs, n=None, weights=None, ties="half", *, is_tie=None,
                  alpha=DEFAULT_ALPHA, max_iter=100, tol=1e-10, initial=None):
    """Return Bradley–Terry log-strengths (mean 0), one per item 0..n-1.

    pairs: (winner, loser) item indices, a list of 2-tuples or an (m, 2) integer array.
    n: the number of items (default: largest index + 1); items in no pair get 0 when alpha > 0.
    weights: optional non-negative weight per pair (a weight of 2 counts as two wins).
    is_tie: optional boolean per pair marking ties (the order inside the pair then does not
    matter); ties="half" counts each as half a win for both sides, ties="ignore" drops them.
    alpha: ridge penalty alpha * sum(theta**2), as in choix.opt_pairwise; 0 gives the plain
    maximum-likelihood fit (a ValueError when it is infinite). See the module docstring.
    max_iter, tol: Newton iterations and the largest change of any strength at convergence.
    initial: optional starting strengths (a warm start).

    Raises ValueError for no pairs, bad indices, a self-comparison or negative weights.
    """
    if alpha < 0 or not math.isfinite(alpha):
        raise ValueError("alpha must be a finite number >= 0")
    winners, losers, w, _, n = _directed(pairs, n, weights, is_tie, ties)
    a, b, inverse = _aggregate_keys(winners, losers, n)
    agg = np.bincount(inverse, w, len(a))
    return _fit(n, a, b, agg, alpha, initial, max_iter, tol)


def bootstrap_bt(pairs, n=None, weights=None, rounds=1000, seed=0, level=0.95, *,
                 groups=None, is_tie=None, ties="half", alpha=DEFAULT_ALPHA,
                 max_iter=100, tol=1e-8):
    """Return percentile bootstrap intervals for Bradley–Terry strengths.

    Each round draws, with replacement, as many pairs as there are (or, when `groups` gives a
    group id per pair, as many groups as there are, keeping each drawn group's pairs together:
    resample judgements, whose pairs are not independent), refits, and the intervals are the
    (1 - level) / 2 and (1 + level) / 2 quantiles of the refitted strengths, as Chatbot Arena
    shows. The same seed gives the same intervals. alpha must be > 0 here: a resample can
    easily leave some item undefeated. Units with identical pairs are drawn together by
    multiplicity (same distribution, see _signatures), so a million judgements among a few
    models cost a second of setup and almost nothing per round.

    Returns {"estimate" (fit on all data), "lower", "upper", "std", "samples" (rounds x n),
    "rounds", "level"}; strengths are log-strengths with mean 0 in every round.
    """
    if not 0 < level < 1:
        raise ValueError("level must be between 0 and 1")
    if int(rounds) < 1:
        raise ValueError("rounds must be >= 1")
    if not alpha > 0:
        raise ValueError("bootstrap_bt needs alpha > 0 (resamples may leave an item undefeated)")
    winners, losers, w, source, n = _directed(pairs, n, weights, is_tie, ties)
    m = len(np.asarray(pairs))
    a, b, inverse = _aggregate_keys(winners, losers, n)
    u = len(a)
    estimate = _fit(n, a, b, np.bincount(inverse, w, u), alpha, None, max_iter, tol)
    if groups is None:
        unit_of_row = np.arange(m)
    else:
        unit_of_row = _group_index(_as_vector(groups, m, "groups", dtype=object))
    # Units (pairs or groups) that kept no pair (ignored ties) are left out, as their pairs are.
    units, unit_of_directed = np.unique(unit_of_row[source], return_inverse=True)
    units, unit_of_directed = len(units), unit_of_directed.reshape(-1)
    if units == 0:
        raise ValueError("no pairs left to resample (every pair was an ignored tie)")
    signature_count, signature_of_row, rep = _signatures(unit_of_directed, inverse, w, units)
    rep_inverse, rep_weight, rep_signature = inverse[rep], w[rep], signature_of_row[rep]
    rng = np.random.default_rng(seed)
    pvals = signature_count / units
    samples = np.empty((int(rounds), n))
    for r in range(int(rounds)):
        counts = rng.multinomial(units, pvals)
        agg = np.bincount(rep_inverse, rep_weight * counts[rep_signature], u)
        samples[r] = _fit(n, a, b, agg, alpha, estimate, max_iter, tol)
    lower, upper = np.quantile(samples, [(1 - level) / 2, (1 + level) / 2], axis=0)
    return {
        "estimate": estimate,
        "lower": lower,
        "upper": upper,
        "std": samples.std(axis=0, ddof=1) if rounds > 1 else np.zeros(n),
        "samples": samples,
        "rounds": int(rounds),
        "level": level,
    }


def _group_index(group_ids):
    """Return a dense 0-based index for any hashable group ids (one per pair)."""
    try:
        return np.unique(group_ids.astype(np.int64), return_inverse=True)[1].reshape(-1)
    except (TypeError, ValueError, OverflowError):
        index = {}
        return np.array([index.setdefault(g, len(index)) for g in group_ids], dtype=np.int64)


_M1, _M2 = np.uint64(0xBF58476D1CE4E5B9), np.uint64(0x94D049BB133111EB)


def _mix(x):
    """splitmix64's finaliser: a well-spread 64-bit hash of each uint64."""
    x = (x ^ (x >> np.uint64(30))) * _M1
    x = (x ^ (x >> np.uint64(27))) * _M2
    return x ^ (x >> np.uint64(31))


def _signatures(unit_of_row, key_of_row, weight, units):
    """Group units whose pairs are the same multiset of (directed pair, weight).

    Such units are exchangeable, so drawing `units` units uniformly with replacement is the
    same, in distribution, as drawing each signature with probability (its units / units) and
    adding its representative's pairs that many times: with few distinct patterns (a
    leaderboard of a handful of models over a million judgements) a round costs almost nothing.
    A signature is the sum over the unit's rows of two independent 64-bit hashes (wrapping),
    so the order of rows does not matter; a collision needs 128 bits to agree.

    Returns (units per signature, signature of each row, mask of the representatives' rows).
    """
    bits = np.ascontiguousarray(weight, dtype=np.float64).view(np.uint64)
    key = key_of_row.astype(np.uint64)
    with np.errstate(over="ignore"):
        first = _mix(_mix(key + np.uint64(0x9E3779B97F4A7C15)) ^ bits)
        second = _mix(_mix(key ^ np.uint64(0xD1B54A32D192ED03)) + _mix(bits))
        hashes = np.zeros((units, 2), dtype=np.uint64)
        np.add.at(hashes[:, 0], unit_of_row, first)
        np.add.at(hashes[:, 1], unit_of_row, second)
    # np.unique(axis=0) sorts a void view, several times slower than this lexsort.
    order = np.lexsort((hashes[:, 1], hashes[:, 0]))
    ordered = hashes[order]
    new = np.ones(units, dtype=bool)
    new[1:] = np.any(ordered[1:] != ordered[:-1], axis=1)
    starts = np.flatnonzero(new)
    rep_unit = order[starts]
    count = np.diff(np.append(starts, units))
    signature_of_unit = np.empty(units, dtype=np.int64)
    signature_of_unit[order] = np.cumsum(new) - 1
    signature_of_row = signature_of_unit[unit_of_row]
    rep = unit_of_row == rep_unit[signature_of_row]
    return count, signature_of_row, rep


def to_elo(theta, scale=400.0, base=1000.0):
    """Map log-strengths to an Elo-like scale (Chatbot Arena's: 400 points = 10x the odds)."""
    return np.asarray(theta, dtype=float) * scale / math.log(10) + base


# --------------------------------------------------------------------------------------
# Consensus of several annotators' rankings of one item
# --------------------------------------------------------------------------------------


def _check_rankings(rankings, weights):
    rankings = [list(map(list, r)) for r in rankings]
    if weights is None:
        weights = [1.0] * len(rankings)
    else:
        weights = [float(x) for x in weights]
        if len(weights) != len(rankings):
            raise ValueError("weights must have one entry per ranking")
        if any(not math.isfinite(x) or x < 0 for x in weights):
            raise ValueError("weights must be finite and >= 0")
    kept = [(r, x) for r, x in zip(rankings, weights, strict=True) if any(r)]
    if not kept:
        raise ValueError("no rankings: consensus needs at least one non-empty ranking")
    ids = []
    seen = set()
    for ranking, _ in kept:
        for group in ranking:
            for cid in group:
                if cid not in seen:
                    seen.add(cid)
                    ids.append(cid)
    return kept, ids


def majority_consensus(rankings, weights=None):
    """Return the candidate(s) most often ranked first over several best-first rankings.

    rankings: one per annotator, each a list of groups of candidate ids best first (ties in one
    group). A candidate counts as first in every ranking whose top group holds it, so a shared
    first place gives each of them the vote. weights: optional per-ranking vote weight.

    Returns {"top": ids with the most votes (in order of first appearance), "tied": more than
    one of them, "votes": {id: votes} for every candidate seen, "share": top votes / total
    weight, "rankings": rankings counted}.
    """
    kept, ids = _check_rankings(rankings, weights)
    votes = dict.fromkeys(ids, 0.0)
    for ranking, weight in kept:
        top = next(group for group in ranking if group)
        for cid in top:
            votes[cid] += weight
    best = max(votes.values())
    top = [cid for cid in ids if votes[cid] == best]
    total = sum(weight for _, weight in kept)
    return {
        "top": top,
        "tied": len(top) > 1,
        "votes": votes,
        "share": best / total if total else None,
        "rankings": len(kept),
    }


def ranking_to_pairs(ranking):
    """Yield (first, second, is_tie) for every pair of candidates a best-first ranking orders."""
    groups = [list(g) for g in ranking if len(g)]
    for i, group in enumerate(groups):
        for x, first in enumerate(group):
            for second in group[x + 1 :]:
                yield first, second, True
        for worse in groups[i + 1 :]:
            for better in group:
                for loser in worse:
                    yield better, loser, False


def order_by_score(scores, tol=1e-6):
    """Return groups of keys best first; scores within tol (relative past 1) are tied."""
    ordered = sorted(scores, key=lambda k: -scores[k])
    groups = []
    for key in ordered:
        if groups:
            head = scores[groups[-1][0]]
            if head - scores[key] <= tol * max(1.0, abs(head)):
                groups[-1].append(key)
                continue
        groups.append([key])
    return groups


def bt_consensus(rankings, weights=None, *, alpha=DEFAULT_ALPHA, tol=1e-6):
    """Return an item's consensus order from a Bradley–Terry fit over all the pairs implied.

    Every ranking contributes each ordered pair it implies (candidates it ties are a tie pair,
    half a win each way) with the ranking's weight (e.g. the annotator's reliability). The
    fit is bradley_terry's (alpha as there); candidates whose strengths agree within tol are
    tied in the result.

    Returns {"ranking": groups of ids best first, "scores": {id: log-strength},
    "pairs": pairs used, "rankings": rankings counted}.
    """
    kept, ids = _check_rankings(rankings, weights)
    if len(ids) == 1:
        return {"ranking": [ids], "scores": {ids[0]: 0.0}, "pairs": 0, "rankings": len(kept)}
    index = {cid: i for i, cid in enumerate(ids)}
    rows, ws, tie = [], [], []
    for ranking, weight in kept:
        for first, second, is_tie in ranking_to_pairs(ranking):
            rows.append((index[first], index[second]))
            ws.append(weight)
            tie.append(is_tie)
    if not rows:
        raise ValueError("the rankings imply no pairs (each names a single candidate)")
    theta = bradley_terry(rows, len(ids), ws, is_tie=tie, alpha=alpha)
    scores = {cid: float(theta[index[cid]]) for cid in ids}
    return {
        "ranking": order_by_score(scores, tol),
        "scores": scores,
        "pairs": len(rows),
        "rankings": len(kept),
    }


# --------------------------------------------------------------------------------------
# Annotator reliability -> weight
# --------------------------------------------------------------------------------------


def _known(value):
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def _weight(accuracy, agreement, floor):
    accuracy, agreement = _known(accuracy), _known(agreement)
    value = accuracy if accuracy is not None else agreement if agreement is not None else 1.0
    return min(1.0, max(floor, value))


def annotator_weights(gold_accuracy, agreement, floor=0.1):
    """Map each annotator's reliability to a weight in [floor, 1].

    The rule: the annotator's gold accuracy where it is known (it is measured against known
    answers, so it wins), else their agreement with the others' consensus, else 1 (no evidence
    against them); the value is clipped to [floor, 1] so nobody's votes vanish entirely.
    None and NaN mean unknown.

    gold_accuracy and agreement are mappings annotator -> value (the result is a dict over the
    union of their keys), or equal-length sequences (the result is a numpy array).
    """
    if not 0 < floor <= 1:
        raise ValueError("floor must be in (0, 1]")
    if isinstance(gold_accuracy, Mapping) or isinstance(agreement, Mapping):
        gold_accuracy = gold_accuracy or {}
        agreement = agreement or {}
        if not isinstance(gold_accuracy, Mapping) or not isinstance(agreement, Mapping):
            raise ValueError("give both as mappings or both as sequences")
        keys = list(dict.fromkeys([*gold_accuracy, *agreement]))
        return {k: _weight(gold_accuracy.get(k), agreement.get(k), floor) for k in keys}
    accuracy = list(gold_accuracy)
    agree = list(agreement)
    if len(accuracy) != len(agree):
        raise ValueError("gold_accuracy and agreement must have the same length")
    return np.array([_weight(x, y, floor) for x, y in zip(accuracy, agree, strict=True)])
