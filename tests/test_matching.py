import numpy as np
import pytest

from catalogs.matching import match_catalogs
from conftest import make_events


def greedy(catalog, reference, max_dt):
    """Nearest-in-time first greedy matching, the baseline that fails in swarms."""
    tc = (catalog["time"] - catalog["time"].min()).dt.total_seconds().to_numpy()
    tr = (reference["time"] - catalog["time"].min()).dt.total_seconds().to_numpy()
    d = np.abs(tc[:, None] - tr[None, :])
    pairs, used_c, used_r = [], set(), set()
    for flat in np.argsort(d, axis=None):
        i, j = np.unravel_index(flat, d.shape)
        if d[i, j] <= max_dt and i not in used_c and j not in used_r:
            pairs.append((i, j))
            used_c.add(i)
            used_r.add(j)
    return pairs


def test_optimal_matching_recovers_pairs_greedy_loses():
    # c1 is 1 s from r1 only; c2 is 0.2 s from r1 and 2.3 s from r2. Greedy grabs c2-r1 first.
    catalog = make_events([0.0, 1.2], [33.0, 33.0], [-115.5, -115.5])
    reference = make_events([1.0, 3.5], [33.0, 33.0], [-115.5, -115.5])
    assert len(greedy(catalog, reference, 3.0)) == 1
    pairs = match_catalogs(catalog, reference, max_dt_s=3.0, max_dist_km=15.0)
    assert list(zip(pairs["catalog_index"], pairs["reference_index"])) == [(0, 0), (1, 1)]
    assert pairs["dt_s"].to_numpy() == pytest.approx([-1.0, -2.3])


def test_one_to_one_and_windows():
    # Two catalog events near one reference event: only one may match.
    catalog = make_events([0.0, 0.5, 100.0], [33.0, 33.0, 33.0], [-115.5, -115.5, -115.5])
    reference = make_events([0.2, 100.0, 200.0], [33.0, 34.0, 33.0], [-115.5, -115.5, -115.5])
    pairs = match_catalogs(catalog, reference, max_dt_s=3.0, max_dist_km=15.0)
    # event 2 is 111 km away from reference event 1 (out of range) and reference 2 has no partner.
    assert pairs["reference_index"].tolist() == [0]
    assert pairs["catalog_index"].tolist() == [0]  # 0.2 s beats 0.3 s


def test_distance_and_differences():
    catalog = make_events([0.5], [33.05], [-115.5], depths=[7.0], mags=[2.0])
    reference = make_events([0.0], [33.0], [-115.5], depths=[5.0], mags=[2.3])
    pairs = match_catalogs(catalog, reference)
    assert pairs["distance_km"].iloc[0] == pytest.approx(5.546, abs=0.01)  # 0.05 deg of latitude
    assert pairs["ddepth_km"].iloc[0] == pytest.approx(2.0)
    assert pairs["dmagnitude"].iloc[0] == pytest.approx(-0.3)
    assert pairs["dt_s"].iloc[0] == pytest.approx(0.5)
    assert match_catalogs(catalog, reference, max_dist_km=5.0).empty


def test_swarm_matching_is_maximal_and_fast():
    rng = np.random.default_rng(0)
    n = 20_000
    t = np.sort(rng.uniform(0, 86400 * 5, n))
    ref = make_events(t, 33 + rng.normal(0, 0.05, n), -115.5 + rng.normal(0, 0.05, n))
    cat = make_events(t + rng.normal(0, 0.5, n), ref["latitude"] + rng.normal(0, 0.01, n), ref["longitude"])
    pairs = match_catalogs(cat, ref)
    assert len(pairs) == n
    assert pairs["catalog_index"].is_unique and pairs["reference_index"].is_unique


def test_empty_inputs():
    ref = make_events([0.0], [33.0], [-115.5])
    assert match_catalogs(ref.iloc[:0], ref).empty
    assert match_catalogs(ref, ref.iloc[:0]).empty
