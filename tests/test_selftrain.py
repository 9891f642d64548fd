"""The self-training loop: confident events, the time split, pseudo-labelled real windows with
their masks, and a planted cluster the generator never places being harvested and learned."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch

from genie.batches import SKIP, UNKNOWN, BatchSettings
from genie.pseudolabels import ConfidenceSettings, confident_events, draw_real_batch, holdout_mask, real_picks
from genie.train import batch_losses

EPOCH = pd.Timestamp("2020-01-01", tz="UTC")


def _events(**columns) -> pd.DataFrame:
    base = dict(n_p=6, n_s=6, n_stations=8, n_p_and_s=5, rms_s=0.1, score=0.8, horizontal_uncertainty_km=0.5,
                depth_uncertainty_km=1.0, chance_log10=-20.0)
    n = max(len(v) for v in columns.values())
    return pd.DataFrame({k: columns.get(k, [v] * n) for k, v in base.items()})


def test_each_confidence_test_rejects_its_own_failure():
    s = ConfidenceSettings()
    # Row 0 passes; every other row fails exactly one test (label width 8 km: 2 km horizontal, 4 km depth).
    events = _events(n_p=[6, 1, 6, 6, 6, 6, 6, 6, 6], n_stations=[8, 8, 4, 8, 8, 8, 8, 8, 8],
                     n_p_and_s=[5, 5, 4, 2, 5, 5, 5, 5, 5], rms_s=[0.1, 0.1, 0.1, 0.1, 0.31, 0.1, 0.1, 0.1, 0.1],
                     score=[0.8, 0.8, 0.8, 0.8, 0.8, 0.49, 0.8, 0.8, 0.8],
                     horizontal_uncertainty_km=[0.5] * 6 + [2.1, 0.5, 0.5],
                     depth_uncertainty_km=[1.0] * 7 + [4.1, 1.0], chance_log10=[-20.0] * 8 + [-7.0])
    assert confident_events(events, s, label_sigma_km=8.0).tolist() == [True] + [False] * 8
    # The uncertainty limits scale with the label width.
    assert confident_events(events.iloc[[6, 7]], s, label_sigma_km=20.0).tolist() == [True, True]


def test_holdout_blocks_alternate():
    times = EPOCH + pd.to_timedelta(np.arange(0, 24, 1.0), unit="h")
    held = holdout_mask(pd.Series(times), EPOCH, block_hours=4.0, holdout_every=3)
    # Blocks 0-1 harvest, 2 held out, 3-4 harvest, 5 held out.
    assert held.tolist() == [False] * 8 + [True] * 4 + [False] * 8 + [True] * 4


def _real(model, homogeneous_tt, coherent_pick: bool, spans=((0.0, 1000.0),)):
    """Picks of one confident event (at 100 s) and one unconfirmed event (at 300 s) on every
    station, plus (optionally) a lone coherent pick; times from the model's travel times."""
    sta = model.station_xyz.cpu().numpy()
    events_xyz = np.array([[15.0, 15.0, 5.0], [5.0, 25.0, 5.0]])
    origins = np.array([100.0, 300.0])
    tt = homogeneous_tt(events_xyz, sta)  # [2, S, 2]
    n = len(sta)
    station = np.tile(np.repeat(np.arange(n), 2), 2)
    phase = np.tile([0, 1], 2 * n)
    event = np.repeat([0, 1], 2 * n)
    time_s = origins[event] + tt[event, station, phase]
    extra_station, extra_time = np.array([0]), np.array([250.0])
    station, time_s = np.r_[station, extra_station], np.r_[time_s, extra_time]
    phase, event = np.r_[phase, [0]], np.r_[event, [-1]]
    coherent = np.zeros(len(time_s), bool)
    coherent[-1] = coherent_pick
    return real_picks(model, station, time_s, phase, event, phase, events_xyz, origins, np.array([True, False]),
                      coherent, np.array(spans), EPOCH)


def test_real_windows_label_confident_events_and_mask_the_rest(tiny_model, homogeneous_tt):
    real = _real(tiny_model, homogeneous_tt, coherent_pick=False)
    # Picks of the unconfirmed event are unknown, never noise.
    assert set(real.event.tolist()) == {0, UNKNOWN}
    assert (real.event_phase[real.event == UNKNOWN] == -1).all()
    settings = BatchSettings(windows=32, chunk_s=600.0, queries=6, min_picks=4, min_stations=3,
                             station_fraction=(1.0, 1.0), event_fraction=0.5)
    batch = draw_real_batch(tiny_model, real, settings, np.random.default_rng(3))
    centre = batch.centre_s.cpu().numpy()
    nodes = tiny_model.source_xyz.cpu().numpy()
    # Times are seconds from the stretch start.
    absolute = centre + batch.start_s
    near_unconfirmed = np.abs(absolute - 300.0) < 1.0
    near_confident = np.abs(absolute - 100.0) < 1.5
    assert near_confident.any()
    w = batch.grid_weight.cpu().numpy()
    close = np.linalg.norm(nodes[:, :2] - [5.0, 25.0], axis=1) < 8.0
    if near_unconfirmed.any():
        assert (w[near_unconfirmed][:, close] == 0).all()
    # Windows far in time from both events are taught "no source" everywhere, at full weight.
    quiet = (np.abs(absolute - 100.0) > 20) & (np.abs(absolute - 300.0) > 20)
    assert quiet.any() and (w[quiet] == 1).all() and (batch.grid_labels[torch.as_tensor(quiet)] < 1e-3).all()
    labels = batch.grid_labels.cpu().numpy()
    assert labels[near_confident].max() > 0.5
    # Event windows target the confident event; the others carry no association loss.
    target = batch.assoc_event.cpu().numpy()
    assert set(target.tolist()) <= {0, SKIP} and (target[target == 0] == 0).all()


def test_coherent_unassociated_pick_masks_the_sources_it_could_come_from(tiny_model, homogeneous_tt):
    tail = float(homogeneous_tt.times.max())
    # Windows centred in 200-280 s: around the coherent pick's origin times, clear of both events.
    real = _real(tiny_model, homogeneous_tt, coherent_pick=True, spans=((200.0, 280.0 + tail),))
    settings = BatchSettings(windows=64, chunk_s=600.0, queries=4, min_picks=4, min_stations=3,
                             station_fraction=(1.0, 1.0), event_fraction=0.0)
    batch = draw_real_batch(tiny_model, real, settings, np.random.default_rng(1))
    absolute = batch.centre_s.cpu().numpy() + batch.start_s
    implied = 250.0 - real.node_tt[:, 0, 0]  # origin time of the pick's P from each node
    w = batch.grid_weight.cpu().numpy()
    c = tiny_model.config
    reach = c.offset_step_s * (c.n_offsets - 1) / 2 + 3 * c.label_sigma_s
    near = np.abs(implied[None, :] - absolute[:, None]) <= reach
    far_from_events = (np.abs(absolute - 100.0) > 20) & (np.abs(absolute - 300.0) > 20)
    assert near[far_from_events].any()
    assert (w[far_from_events][near[far_from_events]] == 0).all()
    assert (w[far_from_events][~near[far_from_events]] == 1).all()


def test_masked_entries_do_not_move_the_loss(tiny_model, homogeneous_tt):
    real = _real(tiny_model, homogeneous_tt, coherent_pick=True)
    settings = BatchSettings(windows=16, chunk_s=600.0, queries=4, min_picks=4, min_stations=3,
                             station_fraction=(1.0, 1.0), event_fraction=0.5)
    batch = draw_real_batch(tiny_model, real, settings, np.random.default_rng(2))
    assert (batch.grid_weight == 0).any()
    with torch.no_grad():
        before = batch_losses(tiny_model, batch)
        batch.grid_labels = torch.where(batch.grid_weight == 0, 1.0 - batch.grid_labels, batch.grid_labels)
        after = batch_losses(tiny_model, batch)
        batch.grid_weight = None
        unmasked = batch_losses(tiny_model, batch)
    assert torch.isclose(before["grid"], after["grid"])
    assert not torch.isclose(after["grid"], unmasked["grid"])


def test_no_pick_is_not_taught_where_an_unknown_pick_is_a_candidate(tiny_model, homogeneous_tt):
    # The unconfirmed event's picks sit where the confident event's would be: the confident
    # event then has unknown candidates at stations where its own pick is missing.
    tail = float(homogeneous_tt.times.max())
    real = _real(tiny_model, homogeneous_tt, coherent_pick=False, spans=((50.0, 200.0 + tail),))
    settings = BatchSettings(windows=8, chunk_s=600.0, queries=4, min_picks=4, min_stations=3,
                             station_fraction=(1.0, 1.0), event_fraction=1.0)
    batch = draw_real_batch(tiny_model, real, settings, np.random.default_rng(0))
    assert (batch.assoc_event == 0).all()
    with torch.no_grad():
        base = batch_losses(tiny_model, batch)
        # Drop the confident event's own P at station 0 and put an unknown pick there instead.
        own = (batch.pick_event == 0) & (batch.pick_phase == 0) & (torch.as_tensor(batch.picks.station) == 0)
        batch.pick_event = torch.where(own, torch.tensor(UNKNOWN), batch.pick_event)
        batch.pick_phase = torch.where(own, torch.tensor(-1), batch.pick_phase)
        masked = batch_losses(tiny_model, batch)
        batch.pick_event = torch.where(own, torch.tensor(-1), batch.pick_event)
        noise = batch_losses(tiny_model, batch)
    # As an unknown pick it is left out; as known noise it becomes a "no pick" target.
    assert torch.isfinite(masked["assoc_p"]) and not torch.isclose(masked["assoc_p"], noise["assoc_p"])
    assert not torch.isclose(base["assoc_p"], masked["assoc_p"])


# ---------------------------------------------------------------------------- the loop on a planted cluster
CLUSTER_XYZ = (18.0, 0.0, 8.0)  # km: 3 km outside the station box, inside the model's region of interest


@pytest.fixture(scope="module")
def planted_run(homogeneous_tt, tmp_path_factory):
    """Round 0: a model trained on a generator that places events only in the network's centre
    ([-10, 10] km); the "real" picks add a cluster at CLUSTER_XYZ that no reference catalog lists.
    One self-training round; returns ``(out, picks, cluster events, network, settings)``."""
    from genie.detect import DetectSettings
    from genie.selftrain import SelfTrainer, SelfTrainSettings
    from genie.train import TrainConfig, train
    from generator.synthesize import generate
    from tests.conftest import TRAINED, TRAINED_DETECT, trained_params
    from tests.test_generator import grid_network

    network = grid_network(4, 10.0)
    params = trained_params().replace(region_padding_km=-5.0)
    model_dir = tmp_path_factory.mktemp("planted_model")
    config = TrainConfig(steps=1500, checkpoint_every=1500, validation_hours=0.25,
                         batch=BatchSettings(windows=8, chunk_s=600.0, queries=8, min_picks=6, min_stations=4,
                                             incoherent_fraction=(0.0, 0.0)),
                         detect=DetectSettings(**TRAINED_DETECT))
    torch.manual_seed(0)
    train(network, homogeneous_tt, params, {**TRAINED, "padding_km": 10.0}, config, model_dir, progress=False)

    hours = 6.0
    background, events = generate(network, homogeneous_tt, params.replace(event_rate_per_day=300.0), hours * 3600, 11,
                                  start=EPOCH)
    lat, lon = network.projection.to_latlon(np.array([CLUSTER_XYZ[0]]), np.array([CLUSTER_XYZ[1]]))
    seed_event = pd.DataFrame({"event_id": ["c"], "time": [EPOCH], "latitude": lat, "longitude": lon,
                               "depth_km": [CLUSTER_XYZ[2]], "magnitude": [2.0]})
    cluster_params = params.replace(event_rate_per_day=240.0, reference_fraction=1.0, reference_jitter_km=1.0,
                                    magnitude_min=1.5, burst_rate_per_day=0.0)
    planted, cluster = generate(network, homogeneous_tt, cluster_params, hours * 3600, 12, start=EPOCH,
                                reference=seed_event)
    planted = planted[planted["pick_type"] == "arrival"]
    picks = pd.concat([background, planted], ignore_index=True).sort_values("time", kind="stable")
    picks = picks.drop(columns=["event_id", "true_phase", "pick_type"]).reset_index(drop=True)
    settings = SelfTrainSettings(rounds=1, block_hours=1.0, holdout_every=3, finetune_steps=400, real_fraction=0.5,
                                 chance_check=False,
                                 recalibration={"n_calls": 5, "screen": 8, "bootstrap": 5, "bootstrap_candidates": 3,
                                                "profile_points": 3, "timing_calls": 0, "pick_budget": False})
    out = tmp_path_factory.mktemp("selftrain")
    reference = events[["event_id", "time", "latitude", "longitude", "depth_km", "magnitude"]]
    SelfTrainer(picks, network.stations, out, settings, reference=reference, model_dir=model_dir,
                progress=False).run()
    return out, picks, cluster, network, settings


def _likelihood_at(model_dir, picks, events, network):
    """The model's source likelihood at each event's true hypocentre and origin time."""
    from catalogs.schema import seconds_since
    from genie.features import PickTable
    from genie.model import GenieModel

    model = GenieModel.load(model_dir).eval()
    station = pd.Index(model.station_ids).get_indexer(picks["station_id"])
    table = PickTable(station, seconds_since(picks["time"], EPOCH), (picks["phase"] == "S").to_numpy(int),
                      model.n_stations)
    origin = torch.as_tensor(seconds_since(events["time"], EPOCH))
    xyz = torch.as_tensor(events[["x_km", "y_km", "depth_km"]].to_numpy(), dtype=torch.float32)
    with torch.no_grad():
        times = model.window_times(origin).reshape(-1)
        features = model.features(table, times)
        _, z = model(features, len(origin))
        logits = model.query_logits(z, xyz[:, None, :], torch.zeros(len(origin), 1))
    return torch.sigmoid(logits[:, 0]).numpy()


def test_the_loop_harvests_a_cluster_the_generator_never_places_and_learns_it(planted_run):
    from catalogs.matching import match_catalogs
    from genie.selftrain import _read_events

    out, picks, cluster, network, settings = planted_run
    x0, x1, y0, y1 = network.region(-5.0)
    assert ((cluster["x_km"] > x1) | (cluster["x_km"] < x0) | (cluster["y_km"] > y1) | (cluster["y_km"] < y0)).all()
    cluster = cluster.assign(event_id=cluster["event_id"].astype(str))
    held = holdout_mask(cluster["time"], EPOCH, settings.block_hours, settings.holdout_every)

    # Harvest: round 1 was fine-tuned on confident round-0 events, among them cluster events.
    round0 = _read_events(out / "round_0" / "events.csv")
    metrics1 = json.loads((out / "round_1" / "metrics.json").read_text())
    confident = confident_events(round0, settings.confidence, 8.0).to_numpy()
    harvest = ~holdout_mask(round0["time"], EPOCH, settings.block_hours, settings.holdout_every)
    pairs = match_catalogs(round0[confident & harvest].reset_index(drop=True), cluster, max_dt_s=3.0, max_dist_km=5.0)
    assert len(pairs) >= 5
    assert metrics1["calibration_objective"] == metrics1["calibration_objective"]  # recalibrated (not NaN)

    # The next round's model: higher likelihood at the held-out cluster events (never labels).
    before = _likelihood_at(out / "round_0" / "model", picks, cluster[held], network)
    after = _likelihood_at(out / "round_1" / "model", picks, cluster[held], network)
    assert held.sum() >= 10
    assert after.mean() > before.mean() + 0.05

    # rounds.csv and the figure track both rounds.
    rounds = pd.read_csv(out / "rounds.csv")
    assert rounds["round"].tolist() == [0, 1] and (out / "rounds.png").is_file()
    assert {"heldout_recall", "unexplained_coherent_picks", "validation_f1", "heldout_count_ratio"} <= set(rounds)


def test_a_restarted_loop_continues_after_the_last_finished_round(planted_run, monkeypatch):
    from genie.selftrain import SelfTrainer

    out, picks, cluster, network, settings = planted_run
    before = pd.read_csv(out / "rounds.csv")

    def fail(*args, **kwargs):
        raise AssertionError("a finished round was run again")

    monkeypatch.setattr(SelfTrainer, "_improve", fail)
    monkeypatch.setattr(SelfTrainer, "_associate", fail)
    summary = SelfTrainer(picks, network.stations, out, settings, reference=None, model_dir=out / "round_0" / "model",
                          progress=False).run()
    assert summary["final_round"] == 1
    pd.testing.assert_frame_equal(pd.read_csv(out / "rounds.csv"), before)


def _write_inputs(tmp_path, picks, stations, reference=None):
    from tests.test_associate import CONTRACT

    paths = {"picks": tmp_path / "picks.csv", "stations": tmp_path / "stations.csv"}
    picks[CONTRACT].assign(time=picks["time"].dt.strftime("%Y-%m-%dT%H:%M:%S.%fZ")).to_csv(paths["picks"], index=False)
    stations.to_csv(paths["stations"], index=False)
    if reference is not None:
        paths["reference"] = tmp_path / "reference.csv"
        reference.to_csv(paths["reference"], index=False)
    return paths


def test_cli_self_train_round_0_prints_the_final_table(planted_run, tmp_path, capsys):
    from genie.cli import main

    out, picks, cluster, network, settings = planted_run
    reference = cluster[["event_id", "time", "latitude", "longitude", "depth_km", "magnitude"]]
    paths = _write_inputs(tmp_path, picks, network.stations, reference)
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"block_hours": settings.block_hours}))
    args = ["self-train", "--picks", str(paths["picks"]), "--stations", str(paths["stations"]), "--reference",
            str(paths["reference"]), "--model", str(out / "round_0" / "model"), "--rounds", "0", "--out",
            str(tmp_path / "st"), "--config", str(config), "--device", "cpu", "--quiet"]
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "G-R on the held-out blocks" in printed and "figure rounds:" in printed
    rounds = pd.read_csv(tmp_path / "st" / "rounds.csv")
    # The cluster is the reference here: round 0's model finds most of it on the held-out blocks.
    assert len(rounds) == 1 and rounds["heldout_recall"].iloc[0] > 0.5
    assert (tmp_path / "st" / "model" / "model.pt").is_file()


def test_cli_self_train_bad_input(planted_run, tmp_path, capsys):
    from genie.cli import main

    out, picks, cluster, network, settings = planted_run
    paths = _write_inputs(tmp_path, picks, network.stations)
    base = ["self-train", "--picks", str(paths["picks"]), "--stations", str(paths["stations"]), "--out",
            str(tmp_path / "st"), "--quiet"]
    assert main(base) == 2
    assert "needs a reference catalog" in capsys.readouterr().err
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"rounds": 1, "confidence": {"min_pick": 3}}))
    assert main(base + ["--model", str(out / "round_0" / "model"), "--config", str(config)]) == 2
    assert "min_pick" in capsys.readouterr().err
    config.write_text(json.dumps({"holdout_every": 1}))
    assert main(base + ["--model", str(out / "round_0" / "model"), "--config", str(config)]) == 2
    assert "holdout_every" in capsys.readouterr().err


def test_shifted_real_windows_are_certain_negatives(tiny_model, homogeneous_tt):
    from genie.batches import NO_EVENT
    from genie.pseudolabels import draw_shifted_batch

    real = _real(tiny_model, homogeneous_tt, coherent_pick=False)
    settings = BatchSettings(windows=8, chunk_s=600.0, queries=4, min_picks=4, min_stations=3)
    batch = draw_shifted_batch(tiny_model, real, settings, np.random.default_rng(0))
    assert (batch.grid_labels == 0).all() and (batch.query_labels == 0).all() and batch.grid_weight is None
    assert (batch.pick_event == NO_EVENT).all() and (batch.assoc_event == NO_EVENT).all()
    # Each station's picks moved by one offset of 20-120 s: intervals within a station are kept,
    # the moveout between stations is not.
    absolute = batch.picks.time_s + batch.start_s
    assert len(absolute) > 0
    for sta in np.unique(batch.picks.station):
        mine = np.sort(absolute[batch.picks.station == sta])
        original = np.sort(real.time_s[real.station == sta])
        shifts = [d for d in mine[0] - original
                  if np.abs((mine - d)[:, None] - original[None, :]).min(1).max() < 1e-6]
        assert any(20.0 <= abs(d) <= 120.0 for d in shifts)
    real.shifted_fraction = 1.0
    assert (draw_real_batch(tiny_model, real, settings, np.random.default_rng(1)).grid_labels == 0).all()


def test_keep_best_ends_with_the_round_of_the_best_held_out_score(planted_run, tmp_path):
    import shutil

    from genie.selftrain import SelfTrainer, SelfTrainSettings

    out, picks, cluster, network, settings = planted_run
    copy = tmp_path / "copy"
    shutil.copytree(out, copy)
    scores = pd.read_csv(copy / "rounds.csv")["heldout_score"].to_numpy()
    # Make round 0 the best on record; keep-best must then end with round 0's model.
    metrics = json.loads((copy / "round_0" / "metrics.json").read_text())
    metrics["heldout_score"] = float(scores.max()) + 1.0
    (copy / "round_0" / "metrics.json").write_text(json.dumps(metrics))
    kept = SelfTrainSettings(**{**settings.to_dict(), "keep_best": True, "confidence": settings.confidence})
    summary = SelfTrainer(picks, network.stations, copy, kept, model_dir=copy / "round_0" / "model",
                          progress=False).run()
    assert summary["final_round"] == 0
    assert (copy / "model" / "model.pt").read_bytes() == (copy / "round_0" / "model" / "model.pt").read_bytes()


def test_round_0_calibrates_and_trains_when_no_model_is_given(planted_run, tmp_path, tt_cache):
    from generator.params import GeneratorParams
    from generator.velocity import VelocityModel
    from genie.selftrain import SelfTrainer, SelfTrainSettings
    from tests.conftest import TRAINED

    out, picks, cluster, network, _ = planted_run
    reference = cluster[["event_id", "time", "latitude", "longitude", "depth_km", "magnitude"]].assign(
        event_id=cluster["event_id"].astype(str))
    config = tmp_path / "tiny.json"
    config.write_text(json.dumps({"base": "small", "model": TRAINED, "train": {
        "steps": 20, "checkpoint_every": 20, "validation_hours": 0.1,
        "batch": {"windows": 4, "chunk_s": 600.0, "queries": 4}}}))
    settings = SelfTrainSettings(rounds=0, block_hours=1.0, chance_check=False, config=str(config),
                                 round0_calibration={"n_calls": 5, "screen": 8, "bootstrap": 5,
                                                     "bootstrap_candidates": 3, "profile_points": 3,
                                                     "timing_calls": 3, "pick_budget": False})
    st = tmp_path / "st"
    SelfTrainer(picks, network.stations, st, settings, reference=reference, velocity_model=VelocityModel.homogeneous(6.0),
                tt_spacing_km=2.0, cache_dir=tt_cache, progress=False).run()
    fitted = GeneratorParams.from_json(st / "round_0" / "generator_params.json")
    report = json.loads((st / "round_0" / "calibration_report.json").read_text())
    assert fitted.station_detection and report["n_reference_events"] > 0
    history = json.loads((st / "round_0" / "model" / "history.json").read_text())
    assert history[-1]["step"] == 20
    row = pd.read_csv(st / "rounds.csv").iloc[0]
    assert row["calibration_objective"] == pytest.approx(report["objective_calibrated"], rel=1e-5)
    assert 0.0 <= row["validation_f1"] <= 1.0
