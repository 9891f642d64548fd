"""Local magnitudes from amplitudes: the law inverts the generator's amplitudes, station terms
recover planted site offsets, scales round-trip through JSON."""

import numpy as np
import pytest

from catalogs.magnitude import MagnitudeScale, event_magnitudes, fit_station_terms
from catalogs.schema import InputError
from generator.amplitudes import arrival_amplitudes
from generator.params import GeneratorParams


def test_pick_magnitudes_invert_the_amplitude_law():
    params = GeneratorParams(amp_noise_sigma=0.0)
    m = np.array([0.5, 2.0, 4.0])
    distance = np.array([[5.0, 30.0], [12.0, 80.0], [3.0, 150.0]])
    amp = arrival_amplitudes(m, distance, np.zeros(2), params, np.random.default_rng(0))[..., 0]
    estimate = MagnitudeScale().pick_magnitudes(amp.ravel(), distance.ravel())
    np.testing.assert_allclose(estimate, np.repeat(m, 2), atol=1e-9)
    assert np.isnan(MagnitudeScale().pick_magnitudes([0.0, np.nan], [10.0, 10.0])).all()


def test_amplitudes_are_the_law_that_pick_magnitudes_inverts():
    scale = MagnitudeScale()
    # GaMMA's law in cm/s (c0 = 1.08): an M 3.5 at 10 km has log10 PGV = 1.08 - 1.68 = -0.60 cm/s.
    assert scale.amplitudes([3.5], [10.0])[0] == pytest.approx(10 ** -0.60 / 100)
    m, r = np.array([0.5, 2.0, 4.0, 6.0]), np.array([0.2, 12.0, 80.0, 300.0])
    np.testing.assert_allclose(scale.pick_magnitudes(scale.amplitudes(m, r), r), m, atol=1e-9)
    # One magnitude unit is 0.93 decades; ten times farther, 1.68 decades weaker.
    assert np.log10(scale.amplitudes([3.0, 2.0], [10.0, 100.0])).tolist() == pytest.approx(
        np.log10(scale.amplitudes([2.0, 2.0], [10.0, 10.0])).tolist() + np.array([0.93, -1.68]))


def test_event_magnitude_is_the_median_over_stations():
    table = event_magnitudes(["a"] * 5 + ["b"], ["s1", "s1", "s2", "s3", "s4", "s1"],
                             [1.0, 1.2, 1.5, 1.4, 3.5, 2.0])
    assert table.loc["a", "magnitude"] == pytest.approx(1.45)  # stations 1.1, 1.5, 1.4, 3.5
    assert table.loc["a", "n_magnitude_stations"] == 4 and np.isnan(table.loc["b", "magnitude_uncertainty"])
    assert table.loc["a", "magnitude_uncertainty"] == pytest.approx(1.4826 * 0.2 / 2)


def test_station_terms_recover_site_offsets(tmp_path):
    rng = np.random.default_rng(2)
    n_events, stations = 200, [f"S{i}" for i in range(6)]
    offsets = {s: o for s, o in zip(stations, [0.3, -0.2, 0.0, 0.5, -0.4, 0.1])}
    ref = rng.uniform(0.5, 3.0, n_events)
    ev = np.repeat(np.arange(n_events), 12)
    sta = np.tile(np.repeat(stations, 2), n_events)
    phase = np.tile(["P", "S"] * 6, n_events)
    pick_m = ref[ev] + np.array([offsets[s] for s in sta]) + rng.normal(0, 0.1, len(ev))
    import pandas as pd

    terms, summary = fit_station_terms(ev, sta, phase, pick_m, pd.Series(ref, index=np.arange(n_events)))
    for s, o in offsets.items():
        assert terms[s]["P"] == pytest.approx(o, abs=0.05) and terms[s]["S"] == pytest.approx(o, abs=0.05)
    assert summary["pick_scatter_after"] < summary["pick_scatter_before"]
    scale = MagnitudeScale(terms=terms, source="test")
    scale.to_json(tmp_path / "scale.json")
    again = MagnitudeScale.from_json(tmp_path / "scale.json")
    assert again.terms == terms
    corrected = again.pick_magnitudes(np.full(2, 1e-5), np.full(2, 10.0), ["S0", "S9"], ["P", "P"])
    raw = again.pick_magnitudes(np.full(2, 1e-5), np.full(2, 10.0))
    assert corrected[0] == pytest.approx(raw[0] - terms["S0"]["P"]) and corrected[1] == raw[1]
    (tmp_path / "bad.json").write_text('{"c0": 1}')
    with pytest.raises(InputError, match="not a genie magnitude scale"):
        MagnitudeScale.from_json(tmp_path / "bad.json")
