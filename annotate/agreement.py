"""Agreement statistics over raw judgements. Pure Python/numpy: no Django imports."""

from itertools import combinations


def _rank_positions(ranking):
    """Map candidate id -> rank index (ties share an index) for a best-first list of groups."""
    return {cid: position for position, group in enumerate(ranking) for cid in group}


def _order(positions, a, b):
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
        positions = [_rank_positions(r) for r in rankings]
        for first, second in combinations(positions, 2):
            shared = sorted(first.keys() & second.keys())
            for a, b in combinations(shared, 2):
                total += 1
                agree += _order(first, a, b) == _order(second, a, b)
    if total == 0:
        return None, 0
    return agree / total, total
