"""Agreement statistics over raw judgements. Pure Python/numpy/scipy: no Django imports.

Conventions shared by every function here:

- Invalid input (wrong shape, empty, mismatched lengths, unknown options) raises ValueError
  with a message that says what is wrong; nothing returns NaN.
- "No variation" (every pairable rating is the same single value, so observed and expected
  disagreement are both 0 and the chance-corrected coefficient is 0/0) returns 1.0 by default:
  the raters agree perfectly, and a dashboard should show that rather than fail. Krippendorff
  calls alpha undefined there and the `krippendorff` package raises; pass
  ``no_variation="raise"`` for a ValueError instead.
- scipy is imported inside the functions that need it, so importing this module stays cheap.
"""

from collections import Counter
from itertools import combinations

import numpy as np

LEVELS = ("nominal", "ordinal", "interval", "ratio")
KAPPA_WEIGHTS = (None, "linear", "quadratic")
_NO_VARIATION = ("perfect", "raise")

# Up to this many coders, within-unit pairs are compared coder by coder on the dense
# coders x units matrix; beyond it each unit's values are first packed to the left.
_DENSE_CODERS = 12
# Block size (elements) for the ratio level's value x value expected-disagreement sum.
_RATIO_BLOCK = 1 << 22


def rank_positions(ranking):
    """Map candidate id -> rank index (ties share an index) for a best-first list of groups."""
    return {cid: position for position, group in enumerate(ranking) for cid in group}


def pair_order(positions, a, b):
    """Return -1, 0 or 1: a ranked before b, tied, or after (positions from rank_positions)."""
    return (positions[a] > positions[b]) - (positions[a] < positions[b])


def pairwise_percent_agreement(rankings_per_item):
    """Return (agreement, comparisons) over candidate pairs judged by two annotators.

    `rankings_per_item` is an iterable of lists of rankings (each a best-first list of groups
    of candidate ids) for one item. For every pair of annotators of an item and every pair of
    candidates both ranked, the two agree when they order the pair the same way (ties count
    as an order). Returns (None, 0) when no item has two judgements.
    """
    agree = total = 0
    for rankings in rankings_per_item:
        positions = [rank_positions(r) for r in rankings]
        for first, second in combinations(positions, 2):
            shared = sorted(first.keys() & second.keys())
            for a, b in combinations(shared, 2):
                total += 1
                agree += pair_order(first, a, b) == pair_order(second, a, b)
    if total == 0:
        return None, 0
    return agree / total, total


def _check_no_variation(no_variation):
    if no_variation not in _NO_VARIATION:
        raise ValueError(f"no_variation must be one of {_NO_VARIATION}, not {no_variation!r}")


def _no_variation_result(no_variation, what):
    if no_variation == "raise":
        raise ValueError(
            f"{what}: every rating is the same single value, so observed and expected "
            "disagreement are both 0 and the coefficient is undefined"
        )
    return 1.0


# --------------------------------------------------------------------------------------
# Krippendorff's alpha
# --------------------------------------------------------------------------------------


def _reliability_matrix(data):
    """Return (values, present): a 2-D array and its mask of non-missing entries."""
    arr = np.asarray(data)
    if arr.ndim != 2:
        raise ValueError(
            f"data must be 2-D (coders x units), got an array of {arr.ndim} dimension(s)"
        )
    if arr.size == 0:
        raise ValueError("data is empty: krippendorff_alpha needs coders x units ratings")
    kind = arr.dtype.kind
    if kind in "biuf":
        arr = arr.astype(np.float64, copy=False)
        present = ~np.isnan(arr)
        if np.isinf(arr).any():
            raise ValueError("data contains infinite values")
        return arr, present
    if kind in "US":
        # np.asarray turns NaN inside a list of strings into the string "nan".
        return arr, arr != arr.dtype.type("nan")
    if kind == "O":
        present = np.array(
            [not (v is None or (isinstance(v, float) and v != v)) for v in arr.ravel()],
            dtype=bool,
        ).reshape(arr.shape)
        labels = arr[present].tolist()
        if len({isinstance(v, str) for v in labels}) > 1:
            raise ValueError("data mixes label types (numbers and strings): use one type")
        values = np.asarray(labels)
        if values.dtype.kind == "O":
            raise ValueError("data mixes label types (e.g. numbers and strings): use one type")
        out = np.empty(arr.shape, dtype=values.dtype)
        out[present] = values
        if values.dtype.kind in "biuf":
            out = out.astype(np.float64, copy=False)
            out[~present] = np.nan
        return out, present
    raise ValueError(f"cannot use data of dtype {arr.dtype} as ratings")


def _encode(values, need_codes=True):
    """Return (codes, uniques, counts): uniques sorted, values == uniques[codes].

    With need_codes=False, codes is None (nominal numbers need only the counts).
    """
    if values.dtype.kind == "f" and values.size:
        low, high = values.min(), values.max()
        span = high - low
        # Small-range integer labels (the usual case): a bincount instead of a sort.
        if span <= max(4 * values.size, 1 << 16):
            offsets = values - low
            as_int = offsets.astype(np.int64)
            if np.array_equal(as_int, offsets):
                tally = np.bincount(as_int, minlength=int(span) + 1)
                seen = tally > 0
                uniques = np.flatnonzero(seen) + low
                codes = (np.cumsum(seen) - 1)[as_int] if need_codes else None
                return codes, uniques, tally[seen].astype(np.float64)
    if not need_codes:
        uniques, counts = np.unique(values, return_counts=True)
        return None, uniques, counts.astype(np.float64)
    uniques, codes, counts = np.unique(values, return_inverse=True, return_counts=True)
    return codes.reshape(-1), uniques, counts.astype(np.float64)


def _within_unit_pairs(matrix):
    """Yield (first, second) rows covering every within-unit pair of ratings.

    `matrix` is coders x units of floats with NaN for missing. With few coders the rows are
    the coders themselves; with many, each unit's ratings are packed to the left first, so
    the number of row pairs depends on the most ratings any one unit has, not on the number
    of coders. Positions where either row is NaN are not pairs.
    """
    m, n = matrix.shape
    if m > _DENSE_CODERS:
        present_t = ~np.isnan(matrix.T)
        unit, coder = np.nonzero(present_t)
        per_unit = present_t.sum(axis=1)
        width = int(per_unit.max())
        starts = np.concatenate(([0], np.cumsum(per_unit)[:-1]))
        slot = np.arange(unit.size) - starts[unit]
        packed = np.full((width, n), np.nan)
        packed[slot, unit] = matrix[coder, unit]
        matrix = packed
    for i, j in combinations(range(matrix.shape[0]), 2):
        yield matrix[i], matrix[j]


def _squared_deviation_parts(x, unit, per_unit, pairable):
    """Return (observed, expected) disagreement numerators for a squared-difference metric.

    For d(a, b) = (a - b)^2 on values x (one per pairable rating, `unit` its unit index):
    observed = sum over pairable units of 2 m_u SS_u / (m_u - 1), SS_u the unit's sum of
    squared deviations; expected = 2 n SS, SS the overall sum of squared deviations.
    Deviations from means keep this stable where textbook sums of squares would cancel.
    """
    x = x - x.mean()
    m_u = np.where(pairable, per_unit, 2).astype(np.float64)
    unit_mean = np.bincount(unit, weights=x, minlength=m_u.size) / m_u
    ss_unit = np.bincount(unit, weights=(x - unit_mean[unit]) ** 2, minlength=m_u.size)
    observed = float(np.sum(2.0 * m_u * ss_unit / (m_u - 1)))
    expected = 2.0 * x.size * float(np.sum(x * x))
    return observed, expected


def _ratio_distance(a, b):
    total = a + b
    diff = a - b
    out = np.zeros(np.broadcast(a, b).shape)
    np.divide(diff, total, out=out, where=total != 0)
    return out * out


def krippendorff_alpha(data, level="nominal", *, no_variation="perfect"):
    """Return Krippendorff's alpha for coders x units reliability data.

    `data` is array-like, one row per coder and one column per unit; a missing rating is
    NaN (or None). `level` is "nominal", "ordinal", "interval" or "ratio". Nominal data may
    be any labels numpy can sort (numbers or strings; in a numpy string array the string
    "nan" is what NaN became, so it counts as missing). The other levels need numbers;
    ordinal uses their sorted order, ratio needs them non-negative.

    Units with fewer than two ratings are not pairable and are ignored; with no pairable
    unit at all (one coder, everything missing, empty data) a ValueError says so. When all
    pairable ratings are the same single value the result is 1.0, or a ValueError with
    ``no_variation="raise"`` (see the module docstring).

    The coincidence matrix is never built: nominal needs only its diagonal and marginals
    (counts of equal within-unit pairs, a bincount of values), interval and ordinal have a
    closed form from per-unit sums (ordinal maps each value to its mid cumulative frequency,
    which turns Krippendorff's ordinal metric into a squared difference), and ratio sums its
    metric over within-unit pairs plus a blocked value x value sum for the expected
    disagreement (time O(V^2) in the number V of distinct values, memory O(V)).
    """
    if level not in LEVELS:
        raise ValueError(f"level must be one of {LEVELS}, not {level!r}")
    _check_no_variation(no_variation)
    values, present = _reliability_matrix(data)
    per_unit = present.sum(axis=0)
    pairable = per_unit >= 2
    if not pairable.any():
        raise ValueError(
            "no pairable units: alpha needs at least one unit rated by two or more coders "
            f"(got {values.shape[0]} coder(s) x {values.shape[1]} unit(s))"
        )
    numeric = values.dtype.kind == "f"
    if level != "nominal" and not numeric:
        raise ValueError(f"the {level} level needs numeric ratings; labels work for nominal")

    # Units with one rating stay in place (no copy of the data) but are masked out here and
    # weighted 0 below; within-unit pairs cannot involve them anyway.
    used = present if pairable.all() else present & pairable
    flat = values[used]  # coder-major order
    n = flat.size
    if level == "interval":
        # The closed form needs no value codes, so no sort of the values either.
        if flat.min() == flat.max():
            return _no_variation_result(no_variation, "krippendorff_alpha")
    else:
        need_codes = level == "ordinal" or not numeric
        codes, uniques, counts = _encode(flat, need_codes=need_codes)
        if uniques.size == 1:
            return _no_variation_result(no_variation, "krippendorff_alpha")

    if level in ("interval", "ordinal"):
        unit = np.broadcast_to(np.arange(values.shape[1]), values.shape)[used]
        # Krippendorff's ordinal distance between values c < k is
        # (sum_{g=c..k} n_g - (n_c + n_k) / 2)^2 = (M_k - M_c)^2 with M_g = N_g - n_g / 2.
        x = flat if level == "interval" else (np.cumsum(counts) - counts / 2.0)[codes]
        observed, expected = _squared_deviation_parts(x, unit, per_unit, pairable)
    else:
        if numeric:
            matrix = values
        else:  # labels: compare their codes
            matrix = np.full(values.shape, np.nan)
            matrix[used] = codes
        weight = np.where(pairable, 1.0 / np.maximum(per_unit - 1.0, 1.0), 0.0)
        if level == "nominal":
            # Within-unit pairs of equal values: the coincidence matrix's diagonal.
            equal = np.zeros(values.shape[1])
            for a, b in _within_unit_pairs(matrix):
                equal += a == b  # False wherever either is NaN
            observed = n - 2.0 * float(equal @ weight)
            expected = float(n) * n - float(counts @ counts)
        else:
            if uniques[0] < 0:
                raise ValueError("the ratio level needs non-negative values")
            observed = 0.0
            for a, b in _within_unit_pairs(matrix):
                both = ~(np.isnan(a) | np.isnan(b))
                d = _ratio_distance(a[both], b[both])
                observed += 2.0 * float(d @ weight[both])
            expected = 0.0
            block = max(1, _RATIO_BLOCK // uniques.size)
            for start in range(0, uniques.size, block):
                d = _ratio_distance(uniques[start:start + block, None], uniques[None, :])
                expected += float(counts[start:start + block] @ (d @ counts))
    if expected <= 0.0:
        return _no_variation_result(no_variation, "krippendorff_alpha")
    return 1.0 - (n - 1) * observed / expected


# --------------------------------------------------------------------------------------
# Kappas
# --------------------------------------------------------------------------------------


def fleiss_kappa(counts, *, no_variation="perfect"):
    """Return Fleiss' kappa for a units x categories table of rating counts.

    Row i, column j is how many raters put unit i in category j; every row must sum to the
    same number of raters (at least two). When every rating falls in one category the
    result is 1.0, or a ValueError with ``no_variation="raise"``.
    """
    _check_no_variation(no_variation)
    table = np.asarray(counts)
    if table.ndim != 2:
        raise ValueError(f"counts must be 2-D (units x categories), got {table.ndim} dimension(s)")
    if table.shape[0] == 0 or table.shape[1] == 0:
        raise ValueError("counts is empty: fleiss_kappa needs at least one unit and category")
    if table.dtype.kind not in "biuf":
        raise ValueError(f"counts must be numbers, not {table.dtype}")
    table = table.astype(np.float64)
    if not np.isfinite(table).all() or (table < 0).any() or (table != np.round(table)).any():
        raise ValueError("counts must be non-negative whole numbers")
    raters = table.sum(axis=1)
    if (raters != raters[0]).any():
        bad = int(np.flatnonzero(raters != raters[0])[0])
        raise ValueError(
            "every unit must have the same number of ratings: unit 0 has "
            f"{raters[0]:g}, unit {bad} has {raters[bad]:g}"
        )
    r = raters[0]
    if r < 2:
        raise ValueError(f"fleiss_kappa needs at least two ratings per unit, got {r:g}")
    n_units = table.shape[0]
    p_unit = ((table * table).sum(axis=1) - r) / (r * (r - 1))
    p_bar = float(p_unit.mean())
    p_cat = table.sum(axis=0) / (n_units * r)
    p_e = float(p_cat @ p_cat)
    if np.count_nonzero(p_cat) == 1:
        return _no_variation_result(no_variation, "fleiss_kappa")
    return (p_bar - p_e) / (1.0 - p_e)


def _label_vector(values, name):
    arr = np.asarray(values)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be a 1-D sequence of labels")
    if arr.dtype.kind == "O":
        if any(v is None or (isinstance(v, float) and v != v) for v in arr):
            raise ValueError(f"{name} has missing labels: drop those units first")
        arr = np.asarray(arr.tolist())
        if arr.dtype.kind == "O":
            raise ValueError(f"{name} mixes label types (e.g. numbers and strings)")
    if arr.dtype.kind == "f" and np.isnan(arr).any():
        raise ValueError(f"{name} has missing labels (NaN): drop those units first")
    return arr


def cohen_kappa(a, b, weights=None, *, no_variation="perfect"):
    """Return Cohen's kappa between two raters' labels of the same units.

    `a` and `b` are equally long sequences of labels. The categories are the sorted union of
    both; for weighted kappa that sorted order is the ordinal order and the distance between
    categories is the difference of their positions (as scikit-learn does). `weights` is
    None (unweighted), "linear" or "quadratic". When both raters used one and the same label
    throughout the result is 1.0, or a ValueError with ``no_variation="raise"``.
    """
    if weights not in KAPPA_WEIGHTS:
        raise ValueError(f"weights must be one of {KAPPA_WEIGHTS}, not {weights!r}")
    _check_no_variation(no_variation)
    a = _label_vector(a, "a")
    b = _label_vector(b, "b")
    if a.size != b.size:
        raise ValueError(f"a and b must be equally long: {a.size} != {b.size}")
    if a.size == 0:
        raise ValueError("cohen_kappa needs at least one unit")
    try:
        labels, codes = np.unique(np.concatenate([a, b]), return_inverse=True)
    except TypeError as exc:
        raise ValueError(f"the labels of a and b cannot be compared: {exc}") from None
    k = labels.size
    if k == 1:
        return _no_variation_result(no_variation, "cohen_kappa")
    codes = codes.reshape(-1)
    ca, cb = codes[: a.size], codes[a.size:]
    observed = np.bincount(ca * k + cb, minlength=k * k).reshape(k, k).astype(np.float64)
    expected = np.outer(observed.sum(axis=1), observed.sum(axis=0)) / a.size
    position = np.arange(k)
    gap = np.abs(position[:, None] - position[None, :]).astype(np.float64)
    w = {None: (gap > 0).astype(np.float64), "linear": gap, "quadratic": gap * gap}[weights]
    return 1.0 - float((w * observed).sum()) / float((w * expected).sum())


# --------------------------------------------------------------------------------------
# Rankings
# --------------------------------------------------------------------------------------


def _rank_rows(ranks):
    arr = np.asarray(ranks, dtype=np.float64)
    if arr.ndim != 2:
        raise ValueError(f"ranks must be 2-D (raters x objects), got {arr.ndim} dimension(s)")
    if arr.shape[0] < 2:
        raise ValueError(f"needs at least two raters, got {arr.shape[0]}")
    if arr.shape[1] < 2:
        raise ValueError(f"needs at least two ranked objects, got {arr.shape[1]}")
    if not np.isfinite(arr).all():
        raise ValueError("ranks must be finite: every rater must rank every object")
    return arr


def _kendall_w_parts(ranks):
    """Return (12 S, denominator) of Kendall's W with the tie correction."""
    from scipy.stats import rankdata

    r = rankdata(_rank_rows(ranks), axis=1)  # average ranks for ties
    m, n = r.shape
    sums = r.sum(axis=0)
    s = float(((sums - sums.mean()) ** 2).sum())
    ties = 0.0
    for row in r:
        t = np.unique(row, return_counts=True)[1].astype(np.float64)
        ties += float((t**3 - t).sum())
    return 12.0 * s, m * m * (n**3 - n) - m * ties


def kendall_w(ranks):
    """Return Kendall's coefficient of concordance W, corrected for ties.

    `ranks` is raters x objects: each row ranks (or scores: only the order counts, within a
    row) every object; ties get average ranks. W = 12 S / (m^2 (n^3 - n) - m sum T) with
    T = sum over tie groups of t^3 - t. Raises ValueError for fewer than two raters or
    objects, and when every rater tied every object (W is 0/0 there).
    """
    numerator, denominator = _kendall_w_parts(ranks)
    if denominator <= 0:
        raise ValueError("every rater tied every object: Kendall's W is undefined")
    return numerator / denominator


def kendall_w_overall(items, method="mean", weights=None):
    """Return {"w", "items", "skipped"}: Kendall's W over many items.

    `items` is an iterable of raters x objects rank matrices (one per item; shapes may
    differ). method "mean" averages the items' W (weighted by `weights`, one number per
    item, default 1 each); "pooled" is sum(w_i 12 S_i) / sum(w_i D_i), the ratio of the
    summed numerators and denominators, so items with more raters or objects weigh more.
    Items with fewer than two raters or objects, or where every rater tied everything, are
    skipped and counted; "w" is None when no item is left.
    """
    if method not in ("mean", "pooled"):
        raise ValueError(f"method must be 'mean' or 'pooled', not {method!r}")
    items = list(items)
    if weights is None:
        weights = [1.0] * len(items)
    weights = [float(w) for w in weights]
    if len(weights) != len(items):
        raise ValueError(f"weights must have one number per item: {len(weights)} != {len(items)}")
    if any(w < 0 or w != w for w in weights):
        raise ValueError("weights must be non-negative numbers")
    top = bottom = 0.0
    used = skipped = 0
    for ranks, weight in zip(items, weights, strict=True):
        arr = np.asarray(ranks, dtype=np.float64)
        if arr.ndim != 2 or arr.shape[0] < 2 or arr.shape[1] < 2:
            skipped += 1
            continue
        numerator, denominator = _kendall_w_parts(arr)
        if denominator <= 0:
            skipped += 1
            continue
        used += 1
        if method == "mean":
            top += weight * numerator / denominator
            bottom += weight
        else:
            top += weight * numerator
            bottom += weight * denominator
    w = top / bottom if bottom > 0 else None
    return {"w": w, "items": used, "skipped": skipped}


def mean_pairwise_kendall_tau(ranks):
    """Return the mean Kendall tau-b over every pair of raters (raters x objects ranks).

    Uses scipy.stats.kendalltau (tau-b, which handles ties). A pair where one rater tied
    every object has no tau and is left out of the mean; if that leaves no pair, ValueError.
    """
    from scipy.stats import kendalltau

    arr = _rank_rows(ranks)
    taus = []
    for i, j in combinations(range(arr.shape[0]), 2):
        if np.ptp(arr[i]) == 0 or np.ptp(arr[j]) == 0:
            continue
        taus.append(float(kendalltau(arr[i], arr[j]).statistic))
    if not taus:
        raise ValueError("every pair of raters includes one who tied every object: no tau")
    return float(np.mean(taus))


def rank_matrix(rankings):
    """Return (ranks, objects) from best-first rankings given as lists of tie groups.

    Each ranking is like those of `pairwise_percent_agreement` ([["a"], ["b", "c"]]: a
    first, b and c tied). Only objects every ranking contains are kept (sorted); ranks are
    1-based average ranks among them, one row per ranking, ready for `kendall_w`.
    """
    from scipy.stats import rankdata

    positions = [rank_positions(r) for r in rankings]
    if not positions:
        raise ValueError("rank_matrix needs at least one ranking")
    shared = set(positions[0])
    for p in positions[1:]:
        shared &= p.keys()
    objects = sorted(shared)
    raw = np.array([[p[o] for o in objects] for p in positions], dtype=np.float64)
    ranks = rankdata(raw, axis=1) if objects else raw.reshape(len(positions), 0)
    return ranks, objects


# --------------------------------------------------------------------------------------
# Per-annotator agreement with the others' consensus
# --------------------------------------------------------------------------------------


def _hashable(label):
    """Return a hashable form of a label; a ranking's tie groups compare as sets."""
    if isinstance(label, dict):
        return tuple(sorted((k, _hashable(v)) for k, v in label.items()))
    if isinstance(label, (set, frozenset)):
        return frozenset(label)
    if isinstance(label, (list, tuple)):
        if label and all(isinstance(g, (list, tuple, set, frozenset)) for g in label):
            return tuple(frozenset(g) for g in label)
        return tuple(_hashable(v) for v in label)
    return label


def _majority(counter):
    """Return the single most common key of a Counter, or None on a tie for first place."""
    top = counter.most_common(2)
    if not top or (len(top) == 2 and top[0][1] == top[1][1]):
        return None
    return top[0][0]


def _share(hits, n):
    return hits / n if n else None


def leave_one_out_agreement(items, key=None):
    """Return how often each annotator matches the majority label of the other annotators.

    `items` is an iterable of mappings annotator -> label, one mapping per item (a label of
    None means no label and is ignored). Labels may be any value; lists, dicts and sets are
    compared by content, and a ranking given as a best-first list of tie groups compares
    with the order inside a group ignored. `key`, if given, maps each label to what is
    compared (e.g. ``lambda r: frozenset(r[0])`` to compare only the top group).

    For each annotator of each item, the others' labels are counted; when one label has
    strictly the most votes, the item counts for the annotator and they agree if their
    label is that one. A tie for the others' majority is skipped (counted in "ties"), and
    so is an item nobody else labelled ("alone").

    Returns {"annotators": {annotator: stats}, "pool": stats} with stats
    {"agreement": agree / items or None, "agree", "items", "ties", "alone"}.
    """
    def blank():
        return {"agreement": None, "agree": 0, "items": 0, "ties": 0, "alone": 0}

    per = {}
    pool = blank()
    for item in items:
        labels = {
            annotator: _hashable(key(label) if key else label)
            for annotator, label in item.items()
            if label is not None
        }
        votes = Counter(labels.values())
        for annotator, label in labels.items():
            stats = per.setdefault(annotator, blank())
            others = votes.copy()
            others[label] -= 1
            if others[label] == 0:
                del others[label]
            if not others:
                field = "alone"
            else:
                majority = _majority(others)
                if majority is None:
                    field = "ties"
                else:
                    field = "items"
                    hit = int(label == majority)
                    stats["agree"] += hit
                    pool["agree"] += hit
            stats[field] += 1
            pool[field] += 1
    for stats in [*per.values(), pool]:
        stats["agreement"] = _share(stats["agree"], stats["items"])
    return {"annotators": per, "pool": pool}


# --------------------------------------------------------------------------------------
# Bias diagnostics
# --------------------------------------------------------------------------------------


def _lengths(record, shown, index):
    lengths = record.get("lengths")
    if lengths is None:
        raise ValueError(f"record {index} has no 'lengths'")
    if isinstance(lengths, dict):
        try:
            return [float(lengths[c]) for c in shown]
        except KeyError as exc:
            raise ValueError(f"record {index}: no length for candidate {exc.args[0]!r}") from None
    lengths = [float(v) for v in lengths]
    if len(lengths) != len(shown):
        raise ValueError(
            f"record {index}: {len(lengths)} lengths for {len(shown)} shown candidates"
        )
    return lengths


def _first_shown(record, shown, index):
    return shown[0]


def _longest(record, shown, index):
    lengths = _lengths(record, shown, index)
    top = max(lengths)
    longest = [c for c, v in zip(shown, lengths, strict=True) if v == top]
    return longest[0] if len(longest) == 1 else None


def _choice_bias(records, target_of, what):
    """Shared body of position_bias / length_bias (see their docstrings)."""
    from scipy.stats import binomtest

    rows = []
    by_item = {}
    for index, record in enumerate(records):
        try:
            annotator, item, shown = record["annotator"], record["item"], record["shown"]
        except KeyError as exc:
            raise ValueError(f"record {index} has no {exc.args[0]!r}") from None
        shown = list(shown)
        if len(shown) < 2:
            raise ValueError(f"record {index} shows {len(shown)} candidate(s); needs two or more")
        if len(set(shown)) != len(shown):
            raise ValueError(f"record {index} shows a candidate twice")
        chosen = record.get("chosen")
        if chosen is not None and chosen not in shown:
            raise ValueError(f"record {index}: chosen {chosen!r} is not among the shown candidates")
        target = target_of(record, shown, index)
        rows.append((annotator, item, chosen, target, 1.0 / len(shown)))
        if chosen is not None:
            by_item.setdefault(item, Counter())[chosen] += 1

    def blank():
        return {"n": 0, "hits": 0, "chance_sum": 0.0, "consensus_n": 0, "consensus_hits": 0,
                "skipped": 0, "undefined": 0}

    per = {}
    pool = blank()
    for annotator, item, chosen, target, chance in rows:
        groups = (per.setdefault(annotator, blank()), pool)
        if chosen is None:
            for g in groups:
                g["skipped"] += 1
            continue
        if target is None:
            for g in groups:
                g["undefined"] += 1
            continue
        others = by_item[item].copy()
        others[chosen] -= 1
        consensus = _majority(+others)
        for g in groups:
            g["n"] += 1
            g["hits"] += int(chosen == target)
            g["chance_sum"] += chance
            if consensus is not None:
                g["consensus_n"] += 1
                g["consensus_hits"] += int(consensus == target)

    def finish(g):
        n = g["n"]
        chance = g["chance_sum"] / n if n else None
        return {
            "n": n,
            "hits": g["hits"],
            "rate": _share(g["hits"], n),
            "chance": chance,
            "p_value": float(binomtest(g["hits"], n, chance).pvalue) if n else None,
            "consensus_n": g["consensus_n"],
            "consensus_rate": _share(g["consensus_hits"], g["consensus_n"]),
            "skipped": g["skipped"],
            f"{what}_undefined": g["undefined"],
        }

    return {"annotators": {a: finish(g) for a, g in per.items()}, "pool": finish(pool)}


def position_bias(records):
    """Return how often annotators pick the candidate shown first, against chance and consensus.

    `records` is an iterable of mappings, one per judgement:
      - "annotator": who judged (any hashable),
      - "item": what was judged (any hashable; judgements of one item form its consensus),
      - "shown": candidate ids in the order this annotator saw them (first = top/left),
      - "chosen": the candidate id they preferred, or None (tie, skip): counted as skipped.

    Returns {"annotators": {annotator: stats}, "pool": stats}; stats are
      - "n": judgements counted, "hits": how many chose the first-shown candidate,
        "rate": hits / n,
      - "chance": the rate without bias, the mean over the judgements of 1/k for k shown
        candidates (0.5 for pairs),
      - "p_value": two-sided exact binomial test of hits out of n against "chance"
        (scipy.stats.binomtest; exact when every judgement shows the same k),
      - "consensus_rate": how often the candidate the other annotators of the item prefer
        (strict leave-one-out majority) was first in this judgement's order: what an
        annotator who simply followed the consensus would score; "consensus_n" the
        judgements with such a consensus,
      - "skipped": judgements without a choice, "position_undefined": always 0 here.
    Rates are None when their count is 0.
    """
    return _choice_bias(records, _first_shown, "position")


def length_bias(records):
    """Return how often annotators pick the longest candidate, against chance and consensus.

    `records` are as for `position_bias` plus "lengths": the candidates' lengths (any unit,
    e.g. characters), either a mapping candidate id -> length or a sequence aligned with
    "shown". Judgements whose longest candidate is tied are not counted (reported as
    "length_undefined"). "hits" counts choices of the longest candidate, "chance" is the
    mean of 1/k (0.5 for pairs), "consensus_rate" how often the others' majority choice was
    the longest; the other fields are as in `position_bias`.
    """
    return _choice_bias(records, _longest, "length")
