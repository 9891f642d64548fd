"""Competitive assignment by integer program: known optimal answers on small cases."""

import numpy as np

from genie.assign import AssignmentRules, resolve

RULES = AssignmentRules(min_picks=6, min_stations=4, min_p_picks=3, source_cost=0.5)


def _source(d, picks, stations, phases, prob):
    n = len(picks)
    return [np.full(n, d), np.asarray(picks), np.asarray(stations), np.asarray(phases), np.full(n, prob)]


def _stack(*parts):
    return [np.concatenate(columns) for columns in zip(*parts)]


def test_halves_of_a_split_event_do_not_both_survive():
    # Source 0 explains picks 0-7, source 1 picks 3-9 (five shared): only one keeps >= 6 picks,
    # and the optimum keeps the one with the larger total probability, with all its picks.
    a = _source(0, range(8), range(8), [0] * 8, 0.9)
    b = _source(1, range(3, 10), range(3, 10), [0] * 7, 0.8)
    c = _source(2, range(20, 27), range(7), [0, 1] * 3 + [0], 0.7)  # independent source
    keep = resolve(*_stack(a, b, c), RULES)
    assert keep[:8].all() and not keep[8:15].any() and keep[15:].all()


def test_shared_picks_are_split_when_both_sources_stay_valid():
    # Two sources of 8 picks each sharing 2: the shared picks go to the more probable source and
    # both survive.
    a = _source(0, range(8), range(8), [0] * 8, 0.9)
    b = _source(1, range(6, 14), range(6, 14), [0] * 8, 0.6)
    keep = resolve(*_stack(a, b), RULES)
    assert keep[:8].all() and not keep[8:10].any() and keep[10:].all()


def test_one_pick_per_station_and_phase_and_thresholds():
    # Two candidates for the same station and phase (the most probable wins), a pick offered as
    # both P and S (one of them), and a source below min_stations (dropped).
    rows = _stack(_source(0, [0, 1, 2, 3, 4, 5, 6], [0, 0, 1, 2, 3, 4, 5], [0, 0, 0, 0, 1, 1, 1], 0.8),
                  _source(0, [6], [5], [0], 0.9),
                  _source(1, range(30, 37), [0, 0, 1, 1, 2, 2, 2], [0, 1] * 3 + [0], 0.9))
    rows[4][1] = 0.95  # pick 1 beats pick 0 at station 0 (P)
    keep = resolve(*rows, RULES)
    chosen = rows[1][keep & (rows[0] == 0)]
    assert 1 in chosen and 0 not in chosen
    assert (chosen == 6).sum() == 1  # pick 6 once, as P (0.9) rather than S (0.8)
    assert not keep[rows[0] == 1].any()  # 3 stations only


def test_nothing_in_nothing_out():
    assert resolve([], [], [], [], [], RULES).shape == (0,)


def _objective(keep, source, pick, station, phase, prob, rules):
    """Objective of a keep-mask, or None where it breaks a constraint (brute-force reference)."""
    kept = np.flatnonzero(keep)
    if len(np.unique(pick[kept])) < len(kept):
        return None
    slots = source[kept] * 100 + station[kept] * 2 + phase[kept]
    if len(np.unique(slots)) < len(kept):
        return None
    total = 0.0
    for d in np.unique(source[kept]):
        mine = kept[source[kept] == d]
        n_p = int((phase[mine] == 0).sum())
        if len(mine) < rules.min_picks or n_p < rules.min_p_picks or len(np.unique(station[mine])) < rules.min_stations:
            return None
        total += prob[mine].sum() - rules.source_cost
    return total


def test_optimal_on_random_conflicts_with_hopeless_sources():
    """On random small groups, where some sources cannot meet the thresholds with all their
    entries (they are set aside before the groups are solved), the kept entries reach the
    optimum found by trying every subset."""
    rules = AssignmentRules(min_picks=3, min_stations=2, min_p_picks=1, source_cost=0.5)
    rng = np.random.default_rng(3)
    solved_hopeless = 0
    for _ in range(25):
        n = 11
        source = rng.integers(0, 4, n)
        station = rng.integers(0, 3, n)
        phase = rng.integers(0, 2, n)
        pick = rng.integers(0, 8, n)
        prob = rng.uniform(0.3, 1.0, n).round(3)
        keep = resolve(source, pick, station, phase, prob, rules)
        got = _objective(keep, source, pick, station, phase, prob, rules)
        subsets = (np.array([(mask >> i) & 1 for i in range(n)], dtype=bool) for mask in range(2 ** n))
        best = max(v for v in (_objective(m, source, pick, station, phase, prob, rules) for m in subsets)
                   if v is not None)
        assert got is not None and abs(got - best) < 1e-9
        hopeless = [d for d in np.unique(source) if (source == d).sum() < rules.min_picks
                    or len(np.unique(station[source == d])) < rules.min_stations or not (phase[source == d] == 0).any()]
        solved_hopeless += bool(hopeless)
    assert solved_hopeless > 5  # the cases did include sources that are set aside
