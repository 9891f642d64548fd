import json

import numpy as np
import pandas as pd
import pytest

from catalogs.schema import InputError
from generator.detection import (
    correlated_noise,
    pdist_km,
    radial_function,
    sample_selection,
    sample_selections,
    selection_probability,
)
from generator.events import gutenberg_richter, omori_delays, sample_events
from generator.network import Network
from generator.params import GeneratorParams
from generator.synthesize import generate


def grid_network(n_side=6, spacing_km=10.0) -> Network:
    """Stations on a square grid around (33 N, 116 W)."""
    from catalogs.projection import LocalProjection

    proj = LocalProjection(33.0, -116.0)
    x, y = np.meshgrid(np.arange(n_side) * spacing_km, np.arange(n_side) * spacing_km)
    x, y = x.ravel() - x.mean(), y.ravel() - y.mean()
    lat, lon = proj.to_latlon(x, y)
    st = pd.DataFrame({"station_id": [f"XX.S{i:02d}" for i in range(x.size)], "latitude": lat, "longitude": lon,
                       "elevation_m": 0.0})
    return Network.from_stations(st, proj)


@pytest.mark.parametrize("p", [1, 2, 3, 1.5])
def test_radial_function_three_sigma(p):
    assert radial_function(0.0, 5.0, p) == 1.0
    assert radial_function(15.0, 5.0, p) == pytest.approx(np.exp(-4.5), rel=1e-12)  # 0.0111
    assert radial_function(15.0, 5.0, p) == pytest.approx(0.011, abs=0.0005)


def test_radial_function_sharper_for_larger_p():
    r = np.array([0.5, 3.5])  # curves cross at 3 sigma: flatter inside, sharper outside
    f1, f3 = radial_function(r, 1.0, 1), radial_function(r, 1.0, 3)
    assert f3[0] > f1[0] and f3[1] < f1[1]


def test_pdist_monotone_and_capped():
    params = GeneratorParams()
    d = pdist_km([0.0, 1.0, 2.0, 10.0], params)
    assert np.all(np.diff(d) >= 0) and d[-1] == params.pdist_max_km
    assert d[0] == pytest.approx(10 ** params.pdist_log10_km_at_m0)


def test_detection_counts_grow_with_magnitude():
    net = grid_network()
    rng = np.random.default_rng(0)
    n = 400
    counts = []
    for m in (0.5, 1.5, 2.5):
        sel = sample_selections(net, np.zeros((n, 3)) + [0, 0, 5], np.full(n, m), GeneratorParams(), rng)
        counts.append(sel.p.sum(1).mean())
        assert sel.s.sum(1).mean() <= sel.p.sum(1).mean()  # radial_factor_s < radial_factor_p
    assert counts[0] < counts[1] < counts[2]


def test_noise_covariance_matches_c():
    net = grid_network(5)
    chol = net.cholesky(15.0)
    eps = correlated_noise(chol, 40_000, np.random.default_rng(1))
    np.testing.assert_allclose(np.cov(eps.T), net.covariance(15.0), atol=0.03)
    d = net.distances_km()
    assert net.covariance(15.0)[0, 1] == pytest.approx(np.exp(-(d[0, 1] / 15.0) ** 2) + 0.0, abs=1e-5)


def morans_i(x, w):
    z = x - x.mean(1, keepdims=True)
    num = np.einsum("ni,ij,nj->n", z, w, z)
    den = (z**2).sum(1)
    ok = den > 0
    return (x.shape[1] / w.sum()) * num[ok] / den[ok]


def mean_clustering(params, seed=2):
    net = grid_network()
    w = np.exp(-net.distances_km() / 10.0)
    np.fill_diagonal(w, 0.0)
    rng = np.random.default_rng(seed)
    n = 3000
    src = np.column_stack([rng.uniform(-20, 20, n), rng.uniform(-20, 20, n), np.full(n, 5.0)])
    sel = sample_selections(net, src, np.full(n, 1.2), params, rng)
    return morans_i(sel.p.astype(float), w).mean()


def test_clustering_grows_with_noise_strength_and_length():
    base = GeneratorParams(p_exp=2.0)
    weak = mean_clustering(base.replace(lambda_noise=0.0))
    strong = mean_clustering(base.replace(lambda_noise=1.5, sigma_noise=15.0))
    stronger = mean_clustering(base.replace(lambda_noise=1.5, sigma_noise=40.0))
    assert weak < strong < stronger


def test_logistic_mode():
    params = GeneratorParams(noise_mode="logistic", lambda_noise=0.5, miss_pick_rate=0.0)
    u = np.array([[0.0, 0.0, 5.0]])
    eps = np.array([[10.0, -10.0, 10.0]])
    p = selection_probability(u, eps, params)
    assert p[0, 0] == 1.0  # clipped
    assert p[0, 1] == pytest.approx(0.5, abs=1e-3)  # 1 + 0.5 * 2 * (0 - 0.5)
    assert p[0, 2] == pytest.approx(radial_function(5.0, 1.0, 2.0), abs=1e-12)  # p_r < 0.02: no noise


def test_distance_mode_miss_rate_and_noise():
    params = GeneratorParams(miss_pick_rate=0.1, lambda_noise=1.0)
    p = selection_probability(np.array([[0.0, 1.0]]), np.array([[0.0, -5.0]]), params)
    assert p[0, 0] == pytest.approx(0.9) and p[0, 1] == pytest.approx(0.9)  # r' = max(0, 1 - 5) = 0


def test_ellipse_orientation_elongates_selection():
    net = grid_network(9, 8.0)
    params = GeneratorParams(lambda_noise=0.0, angle_perturb=0.0, axis_perturb_factor=0.0,
                             radial_perturb_factor=0.0, ellipse_azimuth_deg=0.0)
    # Fixed elongated ellipse along x: semi-axes 2 and 0.5 via a direct computation.
    from generator.detection import Ellipses, normalised_distance

    ell = Ellipses(np.array([0.0]), np.array([[2.0, 0.5]]), np.array([1.0]))
    u = normalised_distance(np.zeros((1, 3)), net.xyz, np.array([10.0]), ell, params)
    on_x = np.abs(net.xyz[:, 1]) < 1e-6
    on_y = np.abs(net.xyz[:, 0]) < 1e-6
    far_x = on_x & (np.abs(net.xyz[:, 0] - 16.0) < 1e-6)
    far_y = on_y & (np.abs(net.xyz[:, 1] - 16.0) < 1e-6)
    assert u[0, far_x] == pytest.approx(16.0 / 20.0) and u[0, far_y] == pytest.approx(16.0 / 5.0)


def test_sample_selection_single_event_reproducible():
    net = grid_network()
    ev = {"x_km": 0.0, "y_km": 0.0, "depth_km": 5.0, "magnitude": 1.5}
    a = sample_selection(ev, net, GeneratorParams(), np.random.default_rng(3))
    b = sample_selection(ev, net.stations, GeneratorParams(), np.random.default_rng(3))
    assert [list(x) for x in a] == [list(x) for x in b] and len(a[0]) > 0


def test_gutenberg_richter_and_omori():
    rng = np.random.default_rng(0)
    m = gutenberg_richter(50_000, 1.0, 1.0, 6.0, rng)
    assert m.min() >= 1.0 and m.max() <= 6.0
    assert np.log10(np.e) / (m.mean() - 1.0) == pytest.approx(1.0, abs=0.03)
    t = omori_delays(50_000, 60.0, 1.1, 86400.0, rng)
    assert t.min() >= 0 and t.max() <= 86400.0
    early = (t < 600).mean()
    late = ((t >= 6000) & (t < 6600)).mean()
    assert early > 5 * late  # rate decays


def test_events_follow_reference_and_rate():
    net = grid_network()
    params = GeneratorParams(event_rate_per_day=500, burst_rate_per_day=0.0, reference_fraction=1.0,
                             reference_jitter_km=0.5)
    ref_lat, ref_lon = net.projection.to_latlon(np.array([5.0]), np.array([-5.0]))
    reference = pd.DataFrame({"latitude": ref_lat, "longitude": ref_lon, "depth_km": [8.0]})
    ev = sample_events(net, params, 86400.0 * 4, np.random.default_rng(0), reference)
    assert 1700 < len(ev) < 2300
    assert np.abs(ev["x_km"] - 5.0).max() < 4 and np.abs(ev["y_km"] + 5.0).max() < 4
    assert ev["origin_s"].is_monotonic_increasing


def test_generate_outputs_contract_truth_and_is_reproducible(homogeneous_tt):
    net = grid_network()
    params = GeneratorParams(event_rate_per_day=100)
    picks, events = generate(net, homogeneous_tt, params, 6 * 3600.0, 7)
    again, _ = generate(net, homogeneous_tt, params, 6 * 3600.0, 7)
    pd.testing.assert_frame_equal(picks, again)
    assert picks.columns[:5].tolist() == ["station_id", "time", "phase", "score", "amplitude"]
    assert str(picks["time"].dtype) == "datetime64[ns, UTC]" and picks["time"].is_monotonic_increasing
    assert set(picks["pick_type"]) <= {"arrival", "coda", "background", "spike"}
    true = picks[picks["event_id"] >= 0]
    assert (true["pick_type"] == "arrival").all() and (picks.loc[picks["event_id"] < 0, "true_phase"] == "").all()
    # Each true pick lies near origin + travel time.
    ev = events.set_index(events["event_id"].astype(int))
    origin = ev.loc[true["event_id"], "time"].to_numpy()
    src = ev.loc[true["event_id"], ["x_km", "y_km", "depth_km"]].to_numpy()
    sta_index = pd.Index(net.ids).get_indexer(true["station_id"])
    tt = homogeneous_tt(src, net.xyz)[np.arange(len(true)), sta_index, (true["true_phase"] == "S").to_numpy().astype(int)]
    delay = (true["time"].to_numpy() - origin) / np.timedelta64(1, "s")
    assert np.median(np.abs(delay - tt)) < 0.2
    assert (true["phase"] != true["true_phase"]).mean() < 0.06
    assert events["n_p"].sum() == (true["true_phase"] == "P").sum()
    amp_big = true.merge(events[["event_id", "magnitude"]].assign(event_id=lambda d: d["event_id"].astype(int)),
                         on="event_id")
    big = amp_big["magnitude"] > amp_big["magnitude"].median()
    assert amp_big.loc[big, "amplitude"].median() > amp_big.loc[~big, "amplitude"].median()


def test_params_json_round_trip(tmp_path):
    params = GeneratorParams(p_exp=3.0, noise_mode="logistic", true_score_beta=(3.0, 1.0))
    path = tmp_path / "g.json"
    params.to_json(path)
    assert GeneratorParams.from_json(path) == params
    path.write_text(json.dumps({"p_exp": 2.0, "bogus": 1}))
    with pytest.raises(InputError, match="unknown generator parameter"):
        GeneratorParams.from_json(path)
    path.write_text(json.dumps({"miss_pick_rate": 1.5}))
    with pytest.raises(InputError, match="miss_pick_rate=1.5"):
        GeneratorParams.from_json(path)


def test_timing_errors_are_spatially_correlated():
    from generator.timing import arrival_errors

    net = grid_network(4, 5.0)
    params = GeneratorParams(timing_floor_s=0.01, timing_fraction=0.0, event_bias_s=0.0, timing_corr_s=0.2,
                             timing_corr_length_km=10.0)
    err = arrival_errors(np.ones((20_000, len(net), 2)), net, params, np.random.default_rng(0))[..., 0]
    corr = np.corrcoef(err.T)
    d = net.distances_km()
    near, far = (d > 0) & (d <= 5.01), d > 14
    assert corr[near].mean() > 0.6 and abs(corr[far].mean()) < 0.2
    assert err.std() == pytest.approx(np.hypot(0.2, 0.01), rel=0.05)


def test_event_bias_shifts_all_stations_together():
    from generator.timing import arrival_errors

    net = grid_network(3)
    params = GeneratorParams(timing_floor_s=0.001, timing_fraction=0.0, event_bias_s=0.5, timing_corr_s=0.0)
    err = arrival_errors(np.ones((5000, len(net), 2)), net, params, np.random.default_rng(0))
    assert np.corrcoef(err[:, 0, 0], err[:, -1, 1])[0, 1] > 0.95


def test_3d_ellipsoid_detects_fewer_stations_for_deep_events():
    net = grid_network()
    n = 500
    counts = {}
    for depth in (2.0, 30.0):
        src = np.tile([0.0, 0.0, depth], (n, 1))
        params = GeneratorParams(ellipsoid_3d=True, lambda_noise=0.0)
        counts[depth] = sample_selections(net, src, np.full(n, 1.3), params, np.random.default_rng(0)).p.sum(1).mean()
    flat = sample_selections(net, np.tile([0.0, 0.0, 30.0], (n, 1)), np.full(n, 1.3), GeneratorParams(lambda_noise=0.0),
                             np.random.default_rng(0)).p.sum(1).mean()
    assert counts[30.0] < counts[2.0] and counts[30.0] < flat


def test_false_pick_rates(homogeneous_tt):
    from generator.false_picks import background_picks, spike_picks

    params = GeneratorParams(background_rate_per_hour=20.0, background_rate_spread=0.0,
                             background_diurnal_amplitude=0.0, spike_rate_per_day=10.0, spike_station_fraction=0.5)
    rng = np.random.default_rng(0)
    sta, t, ph = background_picks([f"S{i}" for i in range(10)], 86400.0, params, rng)
    assert len(t) == pytest.approx(20 * 24 * 10, rel=0.05) and 0.45 < (ph == 0).mean() < 0.55
    sta, t, _ = spike_picks(40, 86400.0 * 10, params, rng)
    assert len(t) == pytest.approx(100 * 40 * 0.5, rel=0.25)


def test_background_rates_per_station_mean_and_cycle():
    """Listed stations get their own rate; unlisted ones a log-normal factor of mean 1 (not
    median 1); the day-night cycle peaks at the hour given, in UTC, for every station."""
    from generator.false_picks import background_picks, station_background_rates

    ids = [f"S{i}" for i in range(4000)]
    params = GeneratorParams(background_rate_per_hour=50.0, background_rate_spread=0.9,
                             station_background={"S0": 5.0, "S1": 400.0})
    rates = station_background_rates(ids, params, np.random.default_rng(0))
    assert rates[0] == 5.0 and rates[1] == 400.0
    assert rates[2:].mean() == pytest.approx(50.0, rel=0.05)  # median would be 50 exp(-0.405) = 33
    cyc = GeneratorParams(background_rate_per_hour=200.0, background_rate_spread=0.0,
                          background_diurnal_amplitude=0.8, background_diurnal_peak_hour=20.0)
    sta, t, _ = background_picks(["A", "B"], 86400.0 * 5, cyc, np.random.default_rng(1), start_hour_utc=6.0)
    hour = np.floor((6.0 + t / 3600.0) % 24).astype(int)
    for station in (0, 1):
        counts = np.bincount(hour[sta == station], minlength=24)
        assert abs(int(np.argmax(counts)) - 20) <= 1 and counts[20] / counts[8] > 4.0  # (1.8 / 0.2 = 9)


def test_background_rate_varies_in_time():
    """With background_rate_variability the hourly counts vary beyond Poisson, mean kept."""
    from generator.false_picks import background_picks

    ids = [f"S{i}" for i in range(20)]
    base = dict(background_rate_per_hour=30.0, background_rate_spread=0.0, background_diurnal_amplitude=0.0)
    spreads = {}
    for v in (0.0, 0.8):
        _, t, _ = background_picks(ids, 86400.0 * 20, GeneratorParams(background_rate_variability=v, **base),
                                   np.random.default_rng(2))
        hourly = np.bincount((t // 3600).astype(int), minlength=480)
        spreads[v] = np.log(hourly).std()
        assert hourly.mean() == pytest.approx(600.0, rel=0.3)
    assert spreads[0.0] < 0.06 and spreads[0.8] > 0.4  # Poisson alone: 1 / sqrt(600) = 0.04


def test_edge_and_double_picks():
    """Edge picks sit edge_offset_s after each full UTC hour; doubles carry the other label."""
    from generator.false_picks import duplicate_picks, edge_picks

    params = GeneratorParams(edge_pick_rate_per_hour=0.5, duplicate_rate=0.2, duplicate_spread_s=0.05)
    sta, t, _ = edge_picks(10, 86400.0, params, np.random.default_rng(0), start_hour_utc=0.5)
    hours = (t - 1800.0 - 0.01) / 3600.0
    assert np.allclose(hours, np.round(hours)) and len(t) == pytest.approx(0.5 * 24 * 10, rel=0.2)
    phase = np.zeros(10_000, np.int8)
    d_sta, d_t, d_ph = duplicate_picks(np.arange(10_000), np.arange(10_000.0), phase, params, np.random.default_rng(0))
    assert len(d_t) == pytest.approx(2000, rel=0.1) and (d_ph == 1).all()
    assert np.abs(d_t - d_sta).max() <= 0.05


def test_ps_selection_copula_correlation_recovered():
    """With P and S selection probabilities 1/2, P(both) = 1/4 + arcsin(rho) / (2 pi) for the
    Gaussian copula: the correlation given is recovered from many draws, marginals unchanged."""
    net = grid_network()
    n = 20_000
    for rho in (0.0, 0.6):
        params = GeneratorParams(miss_pick_rate=0.5, lambda_noise=0.0, pdist_log10_km_at_m0=4.0, pdist_per_magnitude=0.0,
                                 pdist_max_km=1e4, radial_perturb_factor=0.0, axis_perturb_factor=0.0,
                                 ps_selection_correlation=rho)
        sel = sample_selections(net, np.zeros((n, 3)) + [0, 0, 5], np.full(n, 1.0), params, np.random.default_rng(3))
        assert np.allclose(sel.prob_p, 0.5, atol=1e-3) and np.allclose(sel.prob_s, 0.5, atol=1e-3)
        both = (sel.p & sel.s).mean()
        assert np.sin(2 * np.pi * (both - 0.25)) == pytest.approx(rho, abs=0.02)
        assert sel.p.mean() == pytest.approx(0.5, abs=0.01) and sel.s.mean() == pytest.approx(0.5, abs=0.01)


def test_laplace_timing_errors():
    """Laplace timing errors keep the std and have the Laplace scale sigma / sqrt(2) and kurtosis 6."""
    from generator.timing import arrival_errors

    net = grid_network()
    params = GeneratorParams(timing_distribution="laplace", timing_floor_s=0.2, timing_fraction=0.0,
                             event_bias_s=0.0, timing_corr_s=0.0)
    err = arrival_errors(np.ones((20_000, len(net), 2)), net, params, np.random.default_rng(0))[..., 0].ravel()
    assert np.abs(err).mean() == pytest.approx(0.2 / np.sqrt(2), rel=0.02)  # Laplace MLE of the scale
    assert err.std() == pytest.approx(0.2, rel=0.02)
    assert (err**4).mean() / err.var() ** 2 == pytest.approx(6.0, rel=0.1)


def test_selection_figures(tmp_path):
    from generator.plots import plot_real_vs_synthetic, plot_selection

    net = grid_network()
    sel = plot_selection(net, [0.0, 0.0, 5.0], 1.5, GeneratorParams(), tmp_path / "sel.png", rng=0)
    assert (tmp_path / "sel.png").stat().st_size > 10_000 and sel.p.shape == (1, len(net))
    plot_real_vs_synthetic(net, [0.0, 0.0, 5.0], 1.5, net.ids[:5], net.ids[:3], GeneratorParams(),
                           tmp_path / "rvs.png", rng=0)
    assert (tmp_path / "rvs.png").stat().st_size > 10_000


def test_amplitude_law_inverts_to_magnitude():
    from generator.amplitudes import arrival_amplitudes, magnitude_from_amplitude

    params = GeneratorParams(amp_station_sigma=0.0, amp_noise_sigma=0.0)
    dist = np.array([[5.0, 20.0, 80.0]])
    amp = arrival_amplitudes([2.3], dist, np.zeros(3), params, np.random.default_rng(0))
    np.testing.assert_allclose(magnitude_from_amplitude(amp[..., 0], dist, params), 2.3)
    assert amp[0, 0, 0] > amp[0, 1, 0] > amp[0, 2, 0] and np.allclose(amp[..., 1] / amp[..., 0], 1.5)
