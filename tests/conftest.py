"""Shared fixtures. Real data are read from ../shared/data (or $GENIE_SHARED_DATA) and the tests
that need them skip cleanly when it is absent."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[1]


def _shared_data() -> Path:
    return Path(os.environ.get("GENIE_SHARED_DATA", ROOT.parent / "shared" / "data"))


@pytest.fixture(scope="session")
def salton_dir() -> Path:
    path = _shared_data() / "salton_sea_2020"
    if not (path / "picks_phasenet.csv").is_file():
        pytest.skip(f"real data not found at {path}")
    return path


def make_events(times, lats, lons, depths=None, mags=None, ids=None) -> pd.DataFrame:
    """A contract events table from plain lists (times as seconds after 2020-01-01 UTC)."""
    n = len(times)
    return pd.DataFrame(
        {
            "event_id": [str(i) for i in (ids if ids is not None else range(n))],
            "time": pd.Timestamp("2020-01-01", tz="UTC") + pd.to_timedelta(np.asarray(times, float), unit="s"),
            "latitude": np.asarray(lats, float),
            "longitude": np.asarray(lons, float),
            "depth_km": np.asarray(depths if depths is not None else np.full(n, 5.0), float),
            "magnitude": np.asarray(mags if mags is not None else np.full(n, 1.0), float),
        }
    )


@pytest.fixture(scope="session")
def tt_cache(tmp_path_factory) -> Path:
    """Travel-time tables cached per test session (builds take seconds with TauP)."""
    return tmp_path_factory.mktemp("traveltimes")


@pytest.fixture(scope="session")
def homogeneous_tt(tt_cache):
    from generator.traveltimes import TravelTimes
    from generator.velocity import VelocityModel

    return TravelTimes.build(VelocityModel.homogeneous(6.0), 120.0, 25.0, spacing_km=2.0, cache_dir=tt_cache)


@pytest.fixture(scope="session")
def layered_tt(tt_cache):
    from generator.traveltimes import TravelTimes
    from generator.velocity import VelocityModel

    return TravelTimes.build(VelocityModel.hadley_kanamori(), 65.0, 21.0, spacing_km=1.0, cache_dir=tt_cache)


# A GENIE model small enough to build and run in milliseconds (16-station grid network).
TINY = dict(n_sources=30, k_sources=5, k_stations=3, hidden=8, latent=6, kernel_s=1.0, label_sigma_km=8.0,
            label_sigma_s=2.0, n_offsets=3, offset_step_s=1.5, k_query=4, assoc_window_s=2.0, assoc_candidates=4,
            depth_max_km=15.0)


@pytest.fixture(scope="session")
def tiny_model(homogeneous_tt):
    import torch

    from genie.model import GenieModel, ModelConfig
    from tests.test_generator import grid_network

    torch.manual_seed(0)
    return GenieModel.build(ModelConfig(**TINY), grid_network(4, 10.0), homogeneous_tt)


# A small model trained for real (about 2 minutes on 2 CPU cores, once per session) on a 4 x 4 grid
# network with one station static, for the association tests: it must find planted events.
TRAINED = dict(n_sources=40, k_sources=5, k_stations=3, hidden=12, latent=8, kernel_s=1.0, wide_kernel_s=3.0,
               label_sigma_km=8.0, label_sigma_s=2.0, n_offsets=3, offset_step_s=1.5, k_query=4, assoc_window_s=2.0,
               assoc_candidates=4, depth_max_km=15.0)
TRAINED_DETECT = dict(threshold=0.2, min_picks=6, min_stations=4, min_p_picks=3, max_residual_s=0.5,
                      relocation_rounds=1)


def trained_params():
    from generator.params import GeneratorParams

    return GeneratorParams(event_rate_per_day=2000.0, depth_max_km=15.0, region_padding_km=10.0, magnitude_min=1.0,
                           background_rate_per_hour=5.0, station_statics={"XX.S00": [0.3, 0.6]})


@pytest.fixture(scope="session")
def trained_model_dir(homogeneous_tt, tmp_path_factory) -> Path:
    """Directory of the trained small model (model.json, model.pt, train_config.json)."""
    from genie.batches import BatchSettings
    from genie.detect import DetectSettings
    from genie.train import TrainConfig, train
    from tests.test_generator import grid_network

    out = tmp_path_factory.mktemp("trained_model")
    config = TrainConfig(steps=1500, checkpoint_every=1500, validation_hours=0.25,
                         batch=BatchSettings(windows=8, chunk_s=600.0, queries=8, min_picks=6, min_stations=4,
                                             incoherent_fraction=(0.0, 0.0)),
                         detect=DetectSettings(**TRAINED_DETECT))
    train(grid_network(4, 10.0), homogeneous_tt, trained_params(), TRAINED, config, out, progress=False)
    return out


@pytest.fixture(scope="session")
def synthetic_day(homogeneous_tt):
    """Two hours of synthetic picks on the trained model's network: ``(picks, events, stations)``
    with the truth columns (``event_id`` -1 for false picks)."""
    from generator.synthesize import generate
    from tests.test_generator import grid_network

    network = grid_network(4, 10.0)
    picks, events = generate(network, homogeneous_tt, trained_params().replace(event_rate_per_day=300.0), 7200.0, 5,
                             start="2020-01-01T00:00:00Z")
    return picks, events, network.stations
