"""Real reference events for calibration: which stations picked P and S for each catalog event.

Two sources:

* :func:`label_picks` — a reference catalog plus unassociated picks (the Salton Sea case). Each
  pick is compared with the predicted arrival of each event at its station (same phase label);
  it is labelled to an event when ``|residual| <= max(min_tolerance_s, tolerance_fraction * tt)``.
  At most one P and one S per station per event (the smallest residual); a pick claimed by
  several events goes to the one it fits best. With ``station_corrections`` a first pass at
  twice the tolerance estimates each station's median P and S residual (site and velocity-model
  error, e.g. slow sediments), and the second pass labels against corrected predictions.
* :func:`from_associations` — an associated catalog (hypoDD ``.pha``, QuakeML with arrivals, our
  own output): its assignments are the labels.

Both return :class:`ReferenceEvents`: the events with local coordinates, boolean selections
``[N, M]`` for P and S, residuals ``[N, M, 2]`` (observed minus predicted, after station
corrections; NaN where not picked) and the assignments.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from catalogs.picks import station_index
from catalogs.schema import seconds_since
from generator.network import Network
from generator.traveltimes import TravelTimes

logger = logging.getLogger(__name__)


@dataclass
class ReferenceEvents:
    """Real events with their station selections (see module doc)."""

    events: pd.DataFrame
    selected_p: np.ndarray
    selected_s: np.ndarray
    residuals: np.ndarray
    assignments: pd.DataFrame
    summary: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.events)

    @property
    def sources(self) -> np.ndarray:
        """``[N, 3]`` ``(x_km, y_km, depth_km)`` in the network frame."""
        return self.events[["x_km", "y_km", "depth_km"]].to_numpy(dtype="float64")

    @property
    def magnitudes(self) -> np.ndarray:
        return self.events["magnitude"].to_numpy(dtype="float64")

    def subset(self, rows) -> "ReferenceEvents":
        """The events at positional ``rows`` (assignments filtered to them)."""
        rows = np.asarray(rows)
        events = self.events.iloc[rows].reset_index(drop=True)
        keep = self.assignments["event_id"].isin(events["event_id"])
        return ReferenceEvents(events, self.selected_p[rows], self.selected_s[rows], self.residuals[rows],
                               self.assignments[keep].reset_index(drop=True), dict(self.summary))


def _nearest(keys: np.ndarray, targets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Index of the nearest key to each target in sorted ``keys``, and its absolute distance."""
    pos = np.searchsorted(keys, targets)
    left = np.clip(pos - 1, 0, len(keys) - 1)
    right = np.clip(pos, 0, len(keys) - 1)
    use_right = np.abs(keys[right] - targets) < np.abs(keys[left] - targets)
    idx = np.where(use_right, right, left)
    return idx, np.abs(keys[idx] - targets)


def _label_pass(event_s, tt, pick_group, pick_s, corrections, min_tol, fraction):
    """One labelling pass; returns a table of accepted (event, station, phase, pick, residual)."""
    n_ev, n_sta, _ = tt.shape
    # Picks of each (station, phase) group live in their own stretch of a single sorted key array.
    span = max(float(pick_s.max() - min(pick_s.min(), event_s.min())), 1.0) + tt.max() + 1e4
    keys = pick_group * span + pick_s
    order = np.argsort(keys, kind="stable")
    keys = keys[order]
    predicted = event_s[:, None, None] + tt + corrections[None]
    group = (np.arange(n_sta)[:, None] * 2 + np.arange(2)[None, :])[None].repeat(n_ev, 0)
    idx, dist = _nearest(keys, (group * span + predicted).ravel())
    tolerance = np.maximum(min_tol, fraction * tt).ravel()
    ok = dist <= tolerance
    pick = order[idx]
    ok &= pick_group[pick] == group.ravel()
    ev, sta, ph = np.unravel_index(np.flatnonzero(ok), tt.shape)
    table = pd.DataFrame({
        "event": ev, "station": sta, "phase": ph, "pick": pick[ok],
        "residual": pick_s[pick[ok]] - predicted[ev, sta, ph],
        "misfit": dist[ok],
    })
    # A pick goes to the event it fits best.
    return table.sort_values("misfit", kind="stable").drop_duplicates("pick").sort_values(["event", "station", "phase"])


def _assemble(events: pd.DataFrame, network: Network, xy, event_row, station, phase, residual,
              assignments: pd.DataFrame, min_stations: int, summary: dict) -> ReferenceEvents:
    """ReferenceEvents from labelled (event, station, phase) triples; events picked on fewer than
    ``min_stations`` stations and their assignments are dropped."""
    n_ev = len(events)
    selected = np.zeros((n_ev, len(network), 2), bool)
    residuals = np.full((n_ev, len(network), 2), np.nan)
    selected[event_row, station, phase] = True
    residuals[event_row, station, phase] = residual
    keep = (selected[..., 0] | selected[..., 1]).sum(1) >= min_stations
    out_events = events.assign(x_km=xy[0], y_km=xy[1], n_p=selected[..., 0].sum(1), n_s=selected[..., 1].sum(1))
    kept_ids = events["event_id"].astype(str)[keep]
    assignments = assignments[assignments["event_id"].astype(str).isin(kept_ids)].reset_index(drop=True)
    summary = {**summary, "events": n_ev, "events_kept": int(keep.sum()), "picks_labelled": len(assignments),
               "picks_labelled_p": int((assignments["phase"] == "P").sum()),
               "picks_labelled_s": int((assignments["phase"] == "S").sum()), "min_stations": min_stations}
    return ReferenceEvents(out_events[keep].reset_index(drop=True), selected[keep, :, 0], selected[keep, :, 1],
                           residuals[keep], assignments, summary)


def median_residuals(station: np.ndarray, phase: np.ndarray, residual: np.ndarray, n_stations: int,
                     min_picks: int = 5) -> np.ndarray:
    """``[S, 2]`` median residual (s) per station and phase (0 P, 1 S) over the picks given
    (``station [n]`` index, ``phase [n]``, ``residual [n]`` s); 0 where fewer than ``min_picks``:
    the station statics these residuals call for."""
    out = np.zeros((n_stations, 2))
    grouped = pd.Series(np.asarray(residual, dtype="float64")).groupby(
        [np.asarray(station, dtype=np.int64), np.asarray(phase, dtype=np.int64)])
    med = grouped.median()[grouped.size() >= min_picks]
    out[med.index.get_level_values(0), med.index.get_level_values(1)] = med.to_numpy()
    return out


def label_picks(events: pd.DataFrame, picks: pd.DataFrame, network: Network, travel_times: TravelTimes,
                min_tolerance_s: float = 1.0, tolerance_fraction: float = 0.03, min_stations: int = 3,
                station_corrections: bool = True) -> ReferenceEvents:
    """Label unassociated ``picks`` to catalog ``events`` by travel-time residual (module doc).

    ``events``: contract events table; ``picks``: contract picks (ids are matched to the network
    by :func:`catalogs.picks.attach_stations`). Events with fewer than ``min_stations`` stations
    picked (P or S) are dropped. The summary counts picks and events labelled.
    """
    sta_of_pick = station_index(picks, network.stations)
    known = np.flatnonzero(sta_of_pick >= 0)
    kept = picks.iloc[known]
    phase_code = (kept["phase"].to_numpy() == "S").astype(np.int64)
    epoch = events["time"].min()
    pick_s = seconds_since(kept["time"], epoch)
    event_s = seconds_since(events["time"], epoch)
    x, y = network.projection.to_xy(events["latitude"], events["longitude"])
    sources = np.column_stack([x, y, events["depth_km"].to_numpy(dtype="float64")])
    tt = travel_times(sources, network.xyz)
    pick_group = sta_of_pick[known] * 2 + phase_code
    corrections = np.zeros((len(network), 2))
    if station_corrections and len(kept):
        first = _label_pass(event_s, tt, pick_group, pick_s, corrections, 2 * min_tolerance_s, 2 * tolerance_fraction)
        corrections = median_residuals(first["station"].to_numpy(), first["phase"].to_numpy(),
                                       first["residual"].to_numpy(), len(network))
    table = _label_pass(event_s, tt, pick_group, pick_s, corrections, min_tolerance_s, tolerance_fraction)

    assignments = pd.DataFrame({
        "pick_index": known[table["pick"].to_numpy()],
        "event_id": events["event_id"].to_numpy()[table["event"].to_numpy()],
        "phase": np.array(["P", "S"])[table["phase"].to_numpy()],
        "residual_s": table["residual"].to_numpy(),
        "score": kept["score"].to_numpy()[table["pick"].to_numpy()],
    })
    summary = {
        "min_tolerance_s": min_tolerance_s,
        "tolerance_fraction": tolerance_fraction,
        "picks": len(picks),
        "picks_on_unknown_stations": int(len(picks) - len(known)),
        "station_corrections_s": {sid: {"P": float(corrections[i, 0]), "S": float(corrections[i, 1])}
                                  for i, sid in enumerate(network.ids)},
    }
    ref = _assemble(events, network, (x, y), table["event"].to_numpy(), table["station"].to_numpy(),
                    table["phase"].to_numpy(), table["residual"].to_numpy(), assignments, min_stations, summary)
    logger.info("labelled %d of %d picks to %d of %d catalog events (>= %d stations)", ref.summary["picks_labelled"],
                len(picks), ref.summary["events_kept"], len(events), min_stations)
    return ref


def from_associations(events: pd.DataFrame, assignments: pd.DataFrame, picks: pd.DataFrame, network: Network,
                      travel_times: TravelTimes | None = None, min_stations: int = 3) -> ReferenceEvents:
    """Reference events from an associated catalog: selections from its assignments.

    Residuals come from ``assignments.residual_s`` where given, else from ``travel_times``.
    Assignments to unknown events or to picks on stations absent from the network are ignored.
    """
    sta_of_pick = station_index(picks, network.stations, source="associated picks")
    pick_rows = assignments["pick_index"].to_numpy(dtype=np.int64)
    event_row = pd.Index(events["event_id"].astype(str)).get_indexer(assignments["event_id"].astype(str))
    ok = (event_row >= 0) & (sta_of_pick[pick_rows] >= 0)
    usable = assignments[ok].reset_index(drop=True)
    pick_rows, event_row = pick_rows[ok], event_row[ok]
    sta = sta_of_pick[pick_rows]
    ph = (usable["phase"].to_numpy() == "S").astype(np.int64)
    x, y = network.projection.to_xy(events["latitude"], events["longitude"])
    res = usable["residual_s"].to_numpy(dtype="float64")
    if travel_times is not None and np.isnan(res).any():
        sources = np.column_stack([x, y, events["depth_km"].to_numpy(dtype="float64")])
        tt = travel_times(sources, network.xyz)
        epoch = events["time"].min()
        pick_s = seconds_since(picks["time"].iloc[pick_rows], epoch)
        computed = pick_s - seconds_since(events["time"], epoch)[event_row] - tt[event_row, sta, ph]
        res = np.where(np.isnan(res), computed, res)
    return _assemble(events, network, (x, y), event_row, sta, ph, res, usable, min_stations, {})
