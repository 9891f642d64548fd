"""``Associator``: continuous picks in, a located catalog with magnitudes out (PyOcto-style API).

    from genie import Associator
    associator = Associator.from_pretrained("model_dir", device="auto", chunk_s=86400)
    events, assignments = associator.associate(picks, stations)

``picks`` and ``stations`` are contract DataFrames (:mod:`catalogs.schema`); ``events`` has the
contract columns plus ``x_km, y_km, n_p, n_s, n_stations, n_p_and_s`` (stations with both P and S),
``score`` (source likelihood),
``probability_sum``, ``rms_s``, ``gap_deg``, 1-sigma uncertainties and ``magnitude_type``;
``assignments`` has ``pick_index`` (row of the given ``picks``), ``event_id``, ``phase``,
``residual_s`` and ``score`` (association probability).

What happens to the picks, in order:

1. Station ids are matched to the model's stations (:func:`catalogs.picks.match_station_ids`).
   A station list that disagrees with the model (a station moved by more than
   ``station_tolerance_km``, or none in common) is an error naming the stations; stations the
   model does not know are ignored with a warning; model stations without picks are inactive.
2. Picks are excluded, never dropped: on unknown stations, outside ``[start, end)``, at hourly
   file edges (PhaseNet's spurious picks at the first samples of each file: within
   ``file_edge_s`` after a multiple of ``file_period_s`` UTC), duplicates (same station and label
   within ``duplicate_s``; the highest score stays) and bursts (more than ``burst_picks`` picks on
   one station within one second: a glitch, not arrivals). :attr:`Associator.excluded` lists them
   with the reason.
3. Station availability (:mod:`genie.availability`): a station is inactive where it has no pick
   within ``availability_gap_s``, or outside its operating dates.
4. Chunks of ``chunk_s`` (a day by default) with an overlap of the longest travel time plus two
   label widths on each side are detected independently (:func:`genie.detect.detect`); a chunk
   keeps the events whose origin falls inside its own span, so memory stays bounded for months of
   picks and a chunked run gives the catalog of one long run. With a ``workdir`` each finished
   chunk is written atomically and a restarted run resumes from the last finished chunk.
5. Chance alignments: for each event, the probability that picks of the background alone (the
   picks no event explains, at each station's own rate around the origin time) would put at
   least as many picks inside the residual gates of one source hypothesis, over the active
   stations the model pairs with that source (all, or those within ``max_distance_km``)
   (:func:`chance_log10`); events above ``max_chance_log10`` are dropped and their picks
   released. This adapts to the network and the hour: a busy swarm stream or a wide gate needs
   more picks for the same significance.
6. Local magnitudes from the pick amplitudes (:mod:`catalogs.magnitude`), with station terms
   when the settings give a magnitude scale.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.stats import poisson
from tqdm.auto import tqdm

from catalogs.events import write_catalog
from catalogs.fileio import read_json_object, write_csv_atomic, write_text_atomic
from catalogs.magnitude import MAGNITUDE_TYPE, MagnitudeScale, event_magnitudes, fit_station_terms
from catalogs.matching import match_catalogs
from catalogs.picks import match_station_ids
from catalogs.projection import epicentral_distance_km
from catalogs.schema import InputError, seconds_since
from generator.params import GeneratorParams
from genie.allocator import retain_freed_memory
from genie.availability import StationActivity, operating_dates
from genie.detect import ASSIGNMENT_COLUMNS, EVENT_COLUMNS, DetectSettings, detect, residual_gate
from genie.features import PickTable
from genie.graphs import within_range
from genie.model import GenieModel, resolve_device

logger = logging.getLogger(__name__)

EXCLUSION_REASONS = ("unknown_station", "outside_time_range", "file_edge", "duplicate", "burst")


def _s(default, unit: str, doc: str):
    return field(default=default, metadata={"unit": unit, "doc": doc})


@dataclass
class AssociatorSettings:
    """Settings of :class:`Associator` (units in each field's metadata); detection thresholds
    are in ``detect`` (:class:`genie.detect.DetectSettings`, defaults from the model's training
    configuration)."""

    chunk_s: float = _s(86400.0, "s", "picks are processed in chunks this long")
    availability_gap_s: float = _s(1800.0, "s", "a station with no pick within this of a time is inactive there")
    station_tolerance_km: float = _s(0.5, "km", "a station farther than this from the model's position is an error")
    file_period_s: float = _s(3600.0, "s", "length of the picker's input files (PhaseNet: hourly)")
    file_edge_s: float = _s(0.05, "s", "picks this close after a file start are edge artefacts (0: keep them)")
    duplicate_s: float = _s(0.05, "s", "picks on one station with one label closer than this are duplicates")
    burst_picks: int = _s(20, "1", "more picks than this on one station within 1 s are a glitch")
    max_chance_log10: float | None = _s(-5.0, "log10", "events whose picks line up by chance on the background "
                                        "pick rates with a probability above 10^this are dropped (None: keep all)")
    background_window_s: float = _s(1800.0, "s", "background pick rates are counted over this span centred on each event")
    magnitude_scale: str | None = _s(None, "-", "JSON of a magnitude scale with station terms (None: GaMMA's law)")
    progress: bool = _s(True, "-", "progress bar over the chunks")
    detect: DetectSettings = field(default_factory=DetectSettings)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def _settings_from(model_dir: Path, overrides: dict) -> AssociatorSettings:
    """Detection settings of the model's training configuration (``train_config.json``), then the
    overrides (names of :class:`AssociatorSettings` or of :class:`DetectSettings`)."""
    detect_names = {f.name for f in dataclasses.fields(DetectSettings)}
    own_names = {f.name for f in dataclasses.fields(AssociatorSettings)} - {"detect"}
    unknown = sorted(set(overrides) - detect_names - own_names - {"detect"})
    if unknown:
        raise InputError(f"unknown associator setting(s) {unknown}; known: {sorted(own_names | detect_names)}")
    detect_values = {}
    config_path = model_dir / "train_config.json"
    if config_path.is_file():
        detect_values.update(read_json_object(config_path, "training configuration").get("train", {}).get("detect", {}))
    detect_values.update(overrides.get("detect", {}))
    detect_values.update({k: v for k, v in overrides.items() if k in detect_names})
    bad = sorted(set(detect_values) - detect_names)
    if bad:
        raise InputError(f"unknown detection setting(s) {bad}; known: {sorted(detect_names)}")
    own = {k: v for k, v in overrides.items() if k in own_names}
    detect = DetectSettings(**detect_values)
    params_path = model_dir / "generator_params.json"
    if params_path.is_file():
        # Terms a model trained before they existed leaves unset (the pick timing errors of the
        # location uncertainties) come from the generator it was trained on.
        detect = detect.for_generator(GeneratorParams.from_json(params_path))
    return AssociatorSettings(**own, detect=detect)


def chance_log10(n_picks: np.ndarray, gates_s: np.ndarray, rates_per_s: np.ndarray) -> np.ndarray:
    """``[E]`` log10 of the probability that background picks alone give a source at least
    ``n_picks [E]`` picks inside its gates: each station and phase catches a background pick with
    probability ``q = 1 - exp(-2 gate rate)`` (Poisson picks at ``rates_per_s [E, S]`` inside
    ``+-gates_s [E, S, 2]``), and the number caught, a sum of such Bernoulli draws, is taken as
    Poisson with mean ``sum q`` (Le Cam: off by at most ``sum q^2``, small where it matters). A
    source with no background at all gets ``-inf``."""
    q = 1.0 - np.exp(-2.0 * np.asarray(gates_s) * np.asarray(rates_per_s)[..., None])
    mean = q.sum(axis=(-2, -1))
    return poisson.logsf(np.asarray(n_picks) - 1, mean) / np.log(10.0)


def _digest(*parts) -> str:
    h = hashlib.sha1()
    for part in parts:
        h.update(json.dumps(part, sort_keys=True, default=str).encode())
    return h.hexdigest()[:16]


@dataclass
class PreparedPicks:
    """Picks ready for detection: rows of the user's table that survived the exclusions, sorted
    by time, with model station indices and times in s from ``epoch``."""

    rows: np.ndarray
    station: np.ndarray
    time_s: np.ndarray
    phase: np.ndarray
    epoch: pd.Timestamp
    start_s: float
    end_s: float
    excluded: pd.DataFrame
    stations_active: np.ndarray  # [S] bool: the station has picks at all
    operating: tuple  # (start_s [S], end_s [S])


class Associator:
    """GENIE association of continuous picks with a trained model (see module doc)."""

    def __init__(self, model: GenieModel, settings: AssociatorSettings | None = None, model_dir: str | None = None):
        self.model = model.eval()
        self.settings = settings or AssociatorSettings()
        self.model_dir = model_dir
        self.scale = (MagnitudeScale.from_json(self.settings.magnitude_scale) if self.settings.magnitude_scale
                      else MagnitudeScale())
        self.excluded = pd.DataFrame()
        self.timings: dict = {}
        self.counts: dict = {}

    @classmethod
    def from_pretrained(cls, directory: str | os.PathLike, device: str = "auto", **settings) -> "Associator":
        """The model in ``directory`` (``model.json`` + ``model.pt`` from ``genie train``) on
        ``device`` (``auto``, ``cpu``, ``cuda``), with the detection settings it was validated
        with, overridden by ``settings`` (any name of :class:`AssociatorSettings` or
        :class:`~genie.detect.DetectSettings`)."""
        directory = Path(directory)
        model = GenieModel.load(directory, device=resolve_device(device))
        return cls(model, _settings_from(directory, settings), str(directory))

    # ------------------------------------------------------------------ inputs
    def _station_map(self, stations: pd.DataFrame) -> None:
        """Check the user's stations against the model's (see module doc, step 1)."""
        model_stations = self.model.stations
        mapping = match_station_ids(stations["station_id"], model_stations["station_id"])
        known = stations[stations["station_id"].astype(str).isin(mapping)]
        if known.empty:
            raise InputError(f"none of the {len(stations)} stations ({', '.join(stations['station_id'].astype(str)[:5])}"
                             f"...) is one of the model's {len(model_stations)} "
                             f"({', '.join(self.model.station_ids[:5])}...): the model was trained on another network")
        unknown = stations[~stations["station_id"].astype(str).isin(mapping)]
        if len(unknown):
            logger.warning("%d station(s) not in the model are ignored: %s", len(unknown),
                           ", ".join(unknown["station_id"].astype(str)))
        target = model_stations.set_index("station_id").loc[known["station_id"].astype(str).map(mapping)]
        moved = epicentral_distance_km(known["latitude"].to_numpy(), known["longitude"].to_numpy(),
                                       target["latitude"].to_numpy(), target["longitude"].to_numpy())
        far = moved > self.settings.station_tolerance_km
        if far.any():
            names = ", ".join(f"{a} ({d:.1f} km)" for a, d in zip(known["station_id"].astype(str)[far], moved[far]))
            raise InputError(f"station(s) {names} lie farther than {self.settings.station_tolerance_km:g} km from the "
                             "model's positions: the model was trained on other stations; retrain it")
        missing = sorted(set(self.model.station_ids) - set(mapping.values()))
        if missing:
            logger.warning("%d model station(s) are not in the station list and count as inactive: %s",
                           len(missing), ", ".join(missing))

    def prepare(self, picks: pd.DataFrame, stations: pd.DataFrame | None = None, start=None, end=None) -> PreparedPicks:
        """Exclusions, station indices and times (module doc, steps 1-2)."""
        s = self.settings
        if stations is not None:
            self._station_map(stations)
        picks = picks.reset_index(drop=True)
        n = len(picks)
        reason = np.full(n, "", dtype=object)
        mapping = match_station_ids(picks["station_id"], self.model.station_ids)
        station = pd.Index(self.model.station_ids).get_indexer(picks["station_id"].astype(str).map(mapping))
        reason[station < 0] = "unknown_station"
        times = pd.to_datetime(picks["time"], utc=True)
        # By default the range opens one longest travel time before the first pick: an event
        # whose picks are all in the table has its origin before them.
        lead = pd.Timedelta(seconds=float(self.model.pair_tt.max()))
        start = pd.Timestamp(start) if start is not None else (times.min() - lead if n else pd.Timestamp(0, tz="UTC"))
        end = pd.Timestamp(end) if end is not None else (times.max() + pd.Timedelta(seconds=1) if n else start)
        start = start.tz_localize("UTC") if start.tzinfo is None else start.tz_convert("UTC")
        end = end.tz_localize("UTC") if end.tzinfo is None else end.tz_convert("UTC")
        if not end > start:
            raise InputError(f"empty time range: --start {start} is not before --end {end}")
        epoch = start.floor("D")
        time_s = seconds_since(times, epoch) if n else np.zeros(0)
        start_s, end_s = float(seconds_since(pd.Series([start]), epoch)[0]), float(seconds_since(pd.Series([end]), epoch)[0])
        # Picks up to one chunk overlap beyond the range stay: events near its edges keep theirs.
        outside = (time_s < start_s - self.overlap_s()) | (time_s >= end_s + self.overlap_s())
        reason[(reason == "") & outside] = "outside_time_range"
        if s.file_edge_s > 0:
            phase_in_file = np.mod(time_s + seconds_since(pd.Series([epoch]), pd.Timestamp(0, tz="UTC"))[0],
                                   s.file_period_s)
            reason[(reason == "") & (phase_in_file < s.file_edge_s)] = "file_edge"
        phase = (picks["phase"].astype(str).str.upper().str[:1] == "S").to_numpy(dtype=np.int64)
        score = pd.to_numeric(picks["score"], errors="coerce").fillna(0.0).to_numpy() if "score" in picks else np.ones(n)
        ok = np.flatnonzero(reason == "")
        if len(ok) and s.burst_picks > 0:
            order = ok[np.lexsort((time_s[ok], station[ok]))]
            span = float(np.ptp(time_s[order])) + 10.0
            key = station[order] * span + time_s[order] - time_s[order].min()
            within = (np.searchsorted(key, key + 0.5, side="right") - np.searchsorted(key, key - 0.5, side="left"))
            reason[order[within > s.burst_picks]] = "burst"
        ok = np.flatnonzero(reason == "")
        if len(ok):
            # Duplicates: runs of picks of one station and label closer than duplicate_s to the
            # previous one; the best-scoring pick of each run stays.
            order = ok[np.lexsort((time_s[ok], phase[ok], station[ok]))]
            same = (station[order][1:] == station[order][:-1]) & (phase[order][1:] == phase[order][:-1])
            group = np.cumsum(np.r_[True, ~(same & (np.diff(time_s[order]) < s.duplicate_s))]) - 1
            ranked = np.lexsort((-score[order], group))
            best = order[ranked][np.r_[True, np.diff(group[ranked]) != 0]]
            reason[np.setdiff1d(order, best)] = "duplicate"
        excluded = picks.assign(reason=reason)[reason != ""]
        for name in EXCLUSION_REASONS:
            count = int((reason == name).sum())
            if count:
                logger.info("%d pick(s) excluded: %s", count, name.replace("_", " "))
        used = np.flatnonzero(reason == "")
        used = used[np.argsort(time_s[used], kind="stable")]
        n_sta = self.model.n_stations
        has = np.bincount(station[used], minlength=n_sta) > 0
        if (~has).any():
            logger.info("%d model station(s) have no picks and are inactive: %s", int((~has).sum()),
                        ", ".join(np.asarray(self.model.station_ids)[~has]))
        operating = (np.full(n_sta, -np.inf), np.full(n_sta, np.inf))
        if stations is not None:
            dates = operating_dates(stations, epoch)
            index = pd.Index(self.model.station_ids).get_indexer(
                stations["station_id"].astype(str).map(match_station_ids(stations["station_id"], self.model.station_ids)))
            ok_rows = index >= 0
            operating[0][index[ok_rows]], operating[1][index[ok_rows]] = dates[0][ok_rows], dates[1][ok_rows]
        self.excluded = excluded
        self.counts = {"picks": n, "used": len(used),
                       "excluded": {name: int((reason == name).sum()) for name in EXCLUSION_REASONS},
                       "stations_with_picks": int(has.sum())}
        return PreparedPicks(used, station[used].astype(np.int64), time_s[used], phase[used], epoch, start_s, end_s,
                             excluded, has, operating)

    # ------------------------------------------------------------------ detection
    def _activity(self, prep: PreparedPicks, lo: int, hi: int):
        gap = self.settings.availability_gap_s
        a = np.searchsorted(prep.time_s, prep.time_s[lo] - gap if hi > lo else 0.0)
        b = np.searchsorted(prep.time_s, prep.time_s[hi - 1] + gap, side="right") if hi > lo else a
        return StationActivity(prep.station[a:b], prep.time_s[a:b], self.model.n_stations, gap, *prep.operating)

    def overlap_s(self) -> float:
        """Overlap of the chunks (s): the longest predicted travel time plus two label widths."""
        c = self.model.config
        return float(self.model.pair_tt.max()) + 2 * c.label_sigma_s + 2 * c.offset_step_s + 3 * max(self.model.kernel_widths)

    def detect_chunk(self, prep: PreparedPicks, c0: float, c1: float) -> tuple[pd.DataFrame, pd.DataFrame, dict]:
        """Events with origins in ``[c0, c1)`` (s from ``prep.epoch``) and their assignments
        (``pick_index`` rows of the user's table), with the stage timings."""
        overlap = self.overlap_s()
        lo, hi = np.searchsorted(prep.time_s, [c0 - overlap, c1 + overlap])
        table = PickTable(prep.station[lo:hi], prep.time_s[lo:hi], prep.phase[lo:hi], self.model.n_stations,
                          device=self.model.device)
        timings: dict = {}
        events, assignments = detect(self.model, table, c0, c1, self.settings.detect, activity=self._activity(prep, lo, hi),
                                     timings=timings)
        assignments = assignments.assign(pick_index=prep.rows[lo:hi][assignments["pick_index"].to_numpy(dtype=np.int64)])
        return events, assignments, timings

    def _chunks(self, prep: PreparedPicks) -> list[tuple[float, float]]:
        step = self.settings.chunk_s
        # Chunk edges on multiples of the window step keep every chunk on the run's window grid.
        step = max(np.round(step / self.model.config.offset_step_s), 1) * self.model.config.offset_step_s
        edges = np.arange(prep.start_s, prep.end_s, step)
        return [(float(a), float(min(a + step, prep.end_s))) for a in edges]

    def associate(self, picks: pd.DataFrame, stations: pd.DataFrame | None = None, start=None, end=None,
                  workdir: str | os.PathLike | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
        """Associate ``picks`` (contract DataFrame; any order) observed on ``stations`` between
        ``start`` and ``end`` (UTC origin times; default from one longest travel time before the first
        pick to the last pick). Returns ``(events, assignments)``
        (module doc). With ``workdir``, finished chunks are kept there and reused on restart."""
        retain_freed_memory()  # genie.allocator: no fresh pages for each window batch
        t_start = time.perf_counter()
        prep = self.prepare(picks, stations, start, end)
        self.timings = {"prepare_s": time.perf_counter() - t_start}
        chunks = self._chunks(prep)
        key = _digest(self.model.metadata(), self.settings.detect, self.settings.chunk_s,
                      self.settings.availability_gap_s, prep.start_s, prep.end_s, str(prep.epoch), len(prep.rows),
                      float(prep.time_s.sum()) if len(prep.time_s) else 0.0, self.scale.to_json())
        store = _ChunkStore(Path(workdir) if workdir else None, key)
        if int(prep.stations_active.sum()) < self.settings.detect.min_stations:
            logger.warning("only %d station(s) have picks; an event needs %d: the catalog is empty",
                           int(prep.stations_active.sum()), self.settings.detect.min_stations)
            chunks = []
        parts_e, parts_a = [], []
        stage_totals: dict = {}
        bar = tqdm(chunks, desc="associating", unit="chunk", disable=not self.settings.progress)
        for number, (c0, c1) in enumerate(bar):
            done = store.load(number)
            if done is None:
                events, assignments, timings = self.detect_chunk(prep, c0, c1)
                events["chunk"] = number
                store.save(number, events, assignments)
                for name, value in timings.items():
                    stage_totals[name] = stage_totals.get(name, 0.0) + value
            else:
                events, assignments = done
                stage_totals["resumed_chunks"] = stage_totals.get("resumed_chunks", 0) + 1
            assignments = assignments.assign(event_index=assignments["event_index"] + sum(len(e) for e in parts_e))
            parts_e.append(events)
            parts_a.append(assignments)
            bar.set_postfix(events=sum(len(e) for e in parts_e))
        bar.close()
        self.timings.update(stage_totals)
        t0 = time.perf_counter()
        events, assignments = self._finish(parts_e, parts_a, picks, prep)
        # _finish: the chance test (timed there), then magnitudes and the output tables.
        self.timings["magnitudes_s"] = time.perf_counter() - t0 - self.timings["chance_s"]
        self.timings["total_s"] = time.perf_counter() - t_start
        self.counts.update(events=len(events), assignments=len(assignments), chunks=len(chunks))
        return events, assignments

    # ------------------------------------------------------------------ output tables
    def _finish(self, parts_e, parts_a, picks: pd.DataFrame, prep: PreparedPicks) -> tuple[pd.DataFrame, pd.DataFrame]:
        """Contract tables from the detections of all chunks."""
        # No chunks (too few active stations, empty range): typed empty tables, same columns.
        det = pd.concat(parts_e, ignore_index=True) if parts_e else pd.DataFrame(
            {col: pd.Series(dtype="float64") for col in EVENT_COLUMNS})
        asg = pd.concat(parts_a, ignore_index=True) if parts_a else pd.DataFrame(
            {col: pd.Series(dtype="int64" if col.endswith("index") else "float64") for col in ASSIGNMENT_COLUMNS})
        t0 = time.perf_counter()
        det, asg = self._drop_chance_events(det, asg, prep)
        self.timings["chance_s"] = time.perf_counter() - t0
        order = np.argsort(det["origin_s"].to_numpy(dtype="float64"), kind="stable")
        inverse = np.empty_like(order)
        inverse[order] = np.arange(len(order))
        det = det.iloc[order].reset_index(drop=True)
        event_index = inverse[asg["event_index"].to_numpy(dtype=np.int64)]
        ids = np.array([f"genie{i:06d}" for i in range(len(det))], dtype=object)
        lat, lon = self.model.network.projection.to_latlon(det["x_km"].to_numpy(dtype="float64"),
                                                          det["y_km"].to_numpy(dtype="float64"))
        times = prep.epoch + pd.to_timedelta(np.round(det["origin_s"].to_numpy(dtype="float64") * 1e6), unit="us")
        events = pd.DataFrame({
            "event_id": ids, "time": pd.DatetimeIndex(times).as_unit("ns"), "latitude": lat, "longitude": lon,
            "depth_km": det["depth_km"].to_numpy(dtype="float64"), "magnitude": np.nan,
            "magnitude_type": MAGNITUDE_TYPE, "magnitude_uncertainty": np.nan,
            "x_km": det["x_km"].to_numpy(dtype="float64"), "y_km": det["y_km"].to_numpy(dtype="float64"),
            "n_p": det["n_p"].to_numpy(dtype=np.int64) if len(det) else np.zeros(0, np.int64),
            "n_s": det["n_s"].to_numpy(dtype=np.int64) if len(det) else np.zeros(0, np.int64),
            "n_stations": det["n_stations"].to_numpy(dtype=np.int64) if len(det) else np.zeros(0, np.int64),
            "n_p_and_s": det["n_p_and_s"].to_numpy(dtype=np.int64) if len(det) else np.zeros(0, np.int64),
            "score": det["likelihood"].to_numpy(dtype="float64"),
            "probability_sum": det["probability_sum"].to_numpy(dtype="float64"),
            "rms_s": det["rms_s"].to_numpy(dtype="float64"),
            "horizontal_uncertainty_km": det["horizontal_uncertainty_km"].to_numpy(dtype="float64"),
            "min_horizontal_uncertainty_km": det["min_horizontal_uncertainty_km"].to_numpy(dtype="float64"),
            "azimuth_max_horizontal_uncertainty_deg":
                det["azimuth_max_horizontal_uncertainty_deg"].to_numpy(dtype="float64"),
            "depth_uncertainty_km": det["depth_uncertainty_km"].to_numpy(dtype="float64"),
            "time_uncertainty_s": det["time_uncertainty_s"].to_numpy(dtype="float64"),
            "gap_deg": det["gap_deg"].to_numpy(dtype="float64"),
            "chance_log10": det["chance_log10"].to_numpy(dtype="float64"),
        })
        assignments = pd.DataFrame({
            "pick_index": asg["pick_index"].to_numpy(dtype=np.int64),
            "event_id": ids[event_index] if len(event_index) else np.zeros(0, dtype=object),
            "phase": asg["phase"].astype(str).to_numpy(),
            "residual_s": asg["residual_s"].to_numpy(dtype="float64"),
            "score": asg["probability"].to_numpy(dtype="float64"),
        }).sort_values(["event_id", "pick_index"], kind="stable").reset_index(drop=True)
        return self.add_magnitudes(events, assignments, picks), assignments

    def background_rates(self, origin_s: np.ndarray, assigned_rows: np.ndarray, prep: PreparedPicks) -> np.ndarray:
        """``[E, S]`` picks per s at each station that no event explains (used picks whose row
        is not in ``assigned_rows``), counted over ``background_window_s`` centred on each
        origin time ``origin_s [E]`` (s from ``prep.epoch``), within the span of the picks."""
        n_sta = self.model.n_stations
        free = ~np.isin(prep.rows, assigned_rows)
        station, times = prep.station[free], prep.time_s[free]
        if len(prep.time_s) == 0 or len(origin_s) == 0:
            return np.zeros((len(origin_s), n_sta))
        t0, t1 = float(prep.time_s.min()), float(prep.time_s.max())
        span = t1 - t0 + 2 * self.settings.background_window_s + 1.0
        keys = np.sort(station * span + (times - t0))
        half = self.settings.background_window_s / 2
        lo = np.clip(np.asarray(origin_s) - half, t0, t1)
        hi = np.clip(np.asarray(origin_s) + half, t0, t1)
        base = np.arange(n_sta)[None, :] * span - t0
        count = np.searchsorted(keys, base + hi[:, None], side="right") - np.searchsorted(keys, base + lo[:, None])
        return count / np.maximum(hi - lo, 1.0)[:, None]

    def _drop_chance_events(self, det: pd.DataFrame, asg: pd.DataFrame, prep: PreparedPicks):
        """``det`` with ``chance_log10`` (:func:`chance_log10` at the background rates and the
        residual gates of each event's location, active stations within the model's pair range
        only), less the events above
        ``max_chance_log10`` and their assignments (``event_index`` renumbered)."""
        model, limit = self.model, self.settings.max_chance_log10
        self.counts["chance_events_dropped"] = 0
        origin = det["origin_s"].to_numpy(dtype="float64")
        xyz = det[["x_km", "y_km", "depth_km"]].to_numpy(dtype="float64")
        tt = model.travel_times(xyz, model.station_xyz.cpu().numpy().astype("float64")) + model.statics.cpu().numpy()[None]
        gates = residual_gate(self.settings.detect, model.config.kernel_s, tt)
        rates = self.background_rates(origin, asg["pick_index"].to_numpy(dtype=np.int64), prep)
        if len(origin):
            lo, hi = np.searchsorted(prep.time_s, [origin.min() - self.settings.availability_gap_s,
                                                   origin.max() + self.settings.availability_gap_s])
            rates = rates * self._activity(prep, int(lo), int(max(hi, lo + 1)))(origin)
        if model.config.max_distance_km is not None:
            # The model pairs a source only with stations within its range: farther stations'
            # background picks could never have joined this event, so they add no chance. A
            # station holding one of the event's picks was in reach when it was associated,
            # wherever the final location lies.
            reach = within_range(xyz, model.station_xyz.cpu().numpy(), model.config.max_distance_km)
            reach[asg["event_index"].to_numpy(dtype=np.int64), asg["station"].to_numpy(dtype=np.int64)] = True
            rates = rates * reach
        n_picks = det["n_p"].to_numpy(dtype=np.int64) + det["n_s"].to_numpy(dtype=np.int64)
        det = det.assign(chance_log10=chance_log10(n_picks, gates, rates))
        if limit is None or det.empty:
            return det, asg
        keep = det["chance_log10"].to_numpy() <= limit
        if not keep.all():
            logger.info("%d event(s) dropped as chance alignments of background picks (chance above 1e%g)",
                        int((~keep).sum()), limit)
        renumber = np.full(len(det), -1)
        renumber[keep] = np.arange(int(keep.sum()))
        asg = asg.assign(event_index=renumber[asg["event_index"].to_numpy(dtype=np.int64)])
        self.counts["chance_events_dropped"] = int((~keep).sum())
        return det[keep].reset_index(drop=True), asg[asg["event_index"] >= 0].reset_index(drop=True)

    def pick_magnitudes(self, events: pd.DataFrame, assignments: pd.DataFrame, picks: pd.DataFrame,
                        scale: MagnitudeScale | None = None) -> pd.DataFrame:
        """Per assigned pick: ``event_id, station_id, phase, magnitude`` (from its amplitude and
        hypocentral distance; station terms of ``scale``, default the associator's)."""
        scale = scale or self.scale
        model = self.model
        rows = picks.iloc[assignments["pick_index"].to_numpy(dtype=np.int64)]
        mapping = match_station_ids(rows["station_id"], model.station_ids)
        station = pd.Index(model.station_ids).get_indexer(rows["station_id"].astype(str).map(mapping))
        event_row = pd.Index(events["event_id"]).get_indexer(assignments["event_id"])
        xyz = events[["x_km", "y_km", "depth_km"]].to_numpy(dtype="float64")[event_row]
        sta = model.station_xyz.cpu().numpy().astype("float64")[station]
        distance = np.linalg.norm(xyz - sta, axis=1)
        amplitude = rows["amplitude"].to_numpy(dtype="float64") if "amplitude" in rows else np.full(len(rows), np.nan)
        station_ids = np.asarray(model.station_ids)[station]
        return pd.DataFrame({"event_id": assignments["event_id"].to_numpy(), "station_id": station_ids,
                             "phase": assignments["phase"].to_numpy(),
                             "magnitude": scale.pick_magnitudes(amplitude, distance, station_ids,
                                                                assignments["phase"].to_numpy())})

    def fit_magnitude_scale(self, events: pd.DataFrame, assignments: pd.DataFrame, picks: pd.DataFrame,
                            reference: pd.DataFrame, label: str, max_dt_s: float = 3.0,
                            max_dist_km: float = 15.0) -> tuple[MagnitudeScale | None, dict]:
        """Station terms of the amplitude law fitted to the magnitudes of ``reference`` events
        matched one-to-one (``max_dt_s``, ``max_dist_km``): ``(scale or None, fit summary)``."""
        pairs = match_catalogs(events, reference, max_dt_s=max_dt_s, max_dist_km=max_dist_km)
        matched = pd.Series(reference["magnitude"].to_numpy()[pairs["reference_index"].to_numpy(dtype=int)],
                            index=events["event_id"].to_numpy()[pairs["catalog_index"].to_numpy(dtype=int)])
        raw = self.pick_magnitudes(events, assignments, picks, MagnitudeScale())
        terms, summary = fit_station_terms(raw["event_id"], raw["station_id"], raw["phase"], raw["magnitude"], matched)
        if not terms:
            return None, summary
        return MagnitudeScale(terms=terms, source=f"GaMMA amplitude law with station terms fitted to {label} "
                                                  f"({summary['n_events']} events)"), summary

    def add_magnitudes(self, events: pd.DataFrame, assignments: pd.DataFrame, picks: pd.DataFrame,
                       scale: MagnitudeScale | None = None) -> pd.DataFrame:
        """``events`` with ``magnitude`` and ``magnitude_uncertainty`` from its picks."""
        if events.empty:
            return events
        per_pick = self.pick_magnitudes(events, assignments, picks, scale)
        mags = event_magnitudes(per_pick["event_id"], per_pick["station_id"], per_pick["magnitude"])
        out = events.copy()
        out["magnitude"] = out["event_id"].map(mags["magnitude"]).astype("float64")
        out["magnitude_uncertainty"] = out["event_id"].map(mags["magnitude_uncertainty"]).astype("float64")
        return out


class _ChunkStore:
    """Finished chunks as CSV pairs under ``workdir/chunks`` with a manifest key; files of
    another run (other inputs, model or settings) are ignored and overwritten."""

    def __init__(self, workdir: Path | None, key: str):
        self.dir = None if workdir is None else workdir / "chunks"
        self.key = key
        if self.dir is None:
            return
        manifest = self.dir / "manifest.json"
        if manifest.is_file():
            try:
                old = json.loads(manifest.read_text()).get("key")
            except json.JSONDecodeError:
                old = None
            if old != key:
                logger.warning("%s holds chunks of another run (inputs, model or settings differ); starting afresh",
                               self.dir)
                for path in self.dir.glob("chunk_*.csv"):
                    path.unlink()
            else:
                logger.info("resuming: finished chunks are read from %s", self.dir)
        self.dir.mkdir(parents=True, exist_ok=True)
        write_text_atomic(manifest, json.dumps({"key": key}) + "\n")

    def _paths(self, number: int) -> tuple[Path, Path]:
        return self.dir / f"chunk_{number:05d}_events.csv", self.dir / f"chunk_{number:05d}_assignments.csv"

    def load(self, number: int):
        if self.dir is None:
            return None
        events_path, assignments_path = self._paths(number)
        if not (events_path.is_file() and assignments_path.is_file()):
            return None
        return pd.read_csv(events_path), pd.read_csv(assignments_path)

    def save(self, number: int, events: pd.DataFrame, assignments: pd.DataFrame) -> None:
        if self.dir is None:
            return
        events_path, assignments_path = self._paths(number)
        # Assignments first: a chunk counts as finished only once its events file exists.
        write_csv_atomic(assignments, assignments_path, float_format="%.17g")
        write_csv_atomic(events, events_path, float_format="%.17g")


def write_outputs(out: Path, events: pd.DataFrame, assignments: pd.DataFrame, picks: pd.DataFrame) -> list[Path]:
    """``events.csv``, ``assignments.csv`` and ``catalog.xml`` (QuakeML) into ``out``."""
    written = write_catalog(events, assignments, picks, out / "events.csv", assignments_path=out / "assignments.csv")
    written += write_catalog(events, assignments, picks, out / "catalog.xml")
    return written

