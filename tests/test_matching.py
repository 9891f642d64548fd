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


def test_uncertainty_coverage_counts_reference_events_inside_the_ellipses():
    """Our events with a 1-sigma ellipse 2 km north-south by 0.5 km east-west, depth sigma 1 km
    and time sigma 0.1 s; the reference events lie 1 km north (half an ellipse), 0.8 km east
    (1.6 ellipses), 1.4 km east (2.8), and one 1.5 km north of an event with only a circle of
    1 km (1.5 of it). Their depths differ by 0.5, 1.5, 2.5, 0 km and times by 0.05, 0.25, 0, 0 s.
    The same reference with its own errors on the third event (1 km horizontal, 2 km in depth)
    brings it within 1.25 and 1.12 sigmas of both catalogs' errors together. A catalog without
    uncertainties gets none."""
    from catalogs.compare import compare_catalogs, summary_table, uncertainty_coverage

    km = 1 / 111.195  # degrees of latitude per km
    lon_km = km / np.cos(np.radians(33.0))
    ours = make_events([0, 100, 200, 300], [33.0] * 4, [-115.5] * 4, depths=[5.0] * 4)
    ours["horizontal_uncertainty_km"] = [2.0, 2.0, 2.0, 1.0]
    ours["min_horizontal_uncertainty_km"] = [0.5, 0.5, 0.5, np.nan]
    ours["azimuth_max_horizontal_uncertainty_deg"] = [0.0, 0.0, 180.0, np.nan]
    ours["depth_uncertainty_km"] = 1.0
    ours["time_uncertainty_s"] = 0.1
    theirs = make_events([0.05, 100.25, 200, 300], [33.0 + km, 33.0, 33.0, 33.0 + 1.5 * km],
                         [-115.5, -115.5 + 0.8 * lon_km, -115.5 + 1.4 * lon_km, -115.5], depths=[5.5, 6.5, 7.5, 5.0])
    coverage = uncertainty_coverage(ours, theirs, [0, 1, 2, 3], [0, 1, 2, 3])
    assert coverage["epicentre"] == {"n": 4, "within": [0.25, 0.75, 1.0], "with_reference_error": 0}
    assert coverage["depth"]["within"] == [0.5, 0.75, 1.0]
    assert coverage["origin_time"]["within"] == [0.75, 0.75, 1.0]
    erred = theirs.assign(horizontal_uncertainty_km=[np.nan, np.nan, 1.0, np.nan],
                          depth_uncertainty_km=[np.nan, np.nan, 2.0, np.nan])
    both = uncertainty_coverage(ours, erred, [0, 1, 2, 3], [0, 1, 2, 3])
    assert both["epicentre"] == {"n": 4, "within": [0.25, 1.0, 1.0], "with_reference_error": 1}
    assert both["depth"] == {"n": 4, "within": [0.5, 1.0, 1.0], "with_reference_error": 1}
    assert both["origin_time"] == {**coverage["origin_time"], "with_reference_error": 0}
    report = compare_catalogs(ours, theirs).report
    assert report["uncertainty_coverage"] == coverage
    assert "epicentre 0.25/0.75/1.00" in summary_table(report)
    plain = ours.drop(columns=[c for c in ours.columns if "uncertainty" in c])
    assert uncertainty_coverage(plain, theirs, [0], [0]) is None
    assert "1/2/3-sigma" not in summary_table(compare_catalogs(plain, theirs).report)
