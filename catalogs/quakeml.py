"""Conversion between contract tables and ObsPy ``Catalog`` objects (QuakeML).

Each event becomes an ObsPy ``Event`` with one ``Origin`` (time, location, depth in m,
uncertainties, RMS and phase counts), one ``Magnitude``, its ``Pick`` objects (waveform id from the
station id ``NET.STA.LOC.CHA``, phase hint, time), an ``Amplitude`` per pick with a known amplitude
(m/s) and one ``Arrival`` per pick with ``phase`` and ``time_residual``. Pick and association
scores, which QuakeML has no field for, travel in a ``genie`` extra namespace.
"""

from __future__ import annotations

import re

from pathlib import Path

import numpy as np
import pandas as pd

from catalogs.events import empty_assignments, empty_picks, normalise_events
from catalogs.schema import EmptyInputError, InputError, Source

NAMESPACE = "https://github.com/genie-associator/genie/quakeml"
_PREFIX = "smi:local/genie"


def _extra(value: float) -> dict:
    return {"score": {"value": f"{value:.6g}", "namespace": NAMESPACE}}


def _extra_score(obj) -> float:
    extra = getattr(obj, "extra", None) or {}
    try:
        return float(extra["score"]["value"])
    except (KeyError, TypeError, ValueError):
        return np.nan


def _waveform_id(station_id: str):
    from obspy.core.event import WaveformStreamID

    parts = (str(station_id).split(".") + ["", "", ""])[:4] if "." in str(station_id) else ["", str(station_id), "", ""]
    return WaveformStreamID(network_code=parts[0], station_code=parts[1], location_code=parts[2], channel_code=parts[3])


def _station_id(waveform_id) -> str:
    parts = [
        waveform_id.network_code or "",
        waveform_id.station_code or "",
        waveform_id.location_code or "",
        waveform_id.channel_code or "",
    ]
    while parts and parts[-1] == "":
        parts.pop()
    return ".".join(parts) if parts[0] else parts[1]


def _finite(value) -> bool:
    return value is not None and not (isinstance(value, float) and np.isnan(value))


# A 1-sigma error ellipse holds a 2-D normal error with this probability (%): 1 - exp(-1/2).
ELLIPSE_CONFIDENCE_PERCENT = 39.35


def _origin_uncertainty(major_km: float, minor_km, azimuth_deg):
    """QuakeML OriginUncertainty: the 1-sigma ellipse when its minor axis and azimuth are given
    (``horizontal_uncertainty`` is then the semi-major axis as well), else the circle of
    ``major_km``."""
    from obspy.core.event import OriginUncertainty

    if not (_finite(minor_km) and _finite(azimuth_deg)):
        return OriginUncertainty(horizontal_uncertainty=major_km * 1000.0, preferred_description="horizontal uncertainty")
    return OriginUncertainty(horizontal_uncertainty=major_km * 1000.0, max_horizontal_uncertainty=major_km * 1000.0,
                             min_horizontal_uncertainty=float(minor_km) * 1000.0,
                             azimuth_max_horizontal_uncertainty=float(azimuth_deg),
                             preferred_description="uncertainty ellipse", confidence_level=ELLIPSE_CONFIDENCE_PERCENT)


def to_obspy(events: pd.DataFrame, assignments: pd.DataFrame | None = None, picks: pd.DataFrame | None = None):
    """Build an :class:`obspy.core.event.Catalog` from contract tables (see module doc)."""
    from obspy import UTCDateTime
    from obspy.core.event import (
        Amplitude,
        Arrival,
        Catalog,
        CreationInfo,
        Event,
        Magnitude,
        Origin,
        OriginQuality,
        Pick,
        QuantityError,
        ResourceIdentifier,
    )

    def rid(*parts) -> ResourceIdentifier:
        return ResourceIdentifier("/".join([_PREFIX, *map(str, parts)]))

    by_event = {}
    if assignments is not None and len(assignments):
        rows = picks.iloc[assignments["pick_index"].to_numpy()].reset_index(drop=True)
        joined = pd.concat(
            [
                assignments[["pick_index", "event_id", "phase", "residual_s", "score"]].reset_index(drop=True),
                rows[["station_id", "time"]].rename(columns={"time": "pick_time"}),
                rows[["score"]].rename(columns={"score": "pick_score"}),
                rows["amplitude"] if "amplitude" in rows else pd.Series(np.nan, index=rows.index, name="amplitude"),
            ],
            axis=1,
        )
        by_event = {str(k): g for k, g in joined.groupby(joined["event_id"].astype(str), sort=False)}

    creation = CreationInfo(agency_id="genie", creation_time=UTCDateTime())
    catalog = Catalog(resource_id=rid("catalog"), creation_info=creation)
    for ev in events.itertuples(index=False):
        eid = str(ev.event_id)
        origin = Origin(
            resource_id=rid("origin", eid),
            time=UTCDateTime(ns=int(ev.time.as_unit("ns").value)),
            latitude=float(ev.latitude),
            longitude=float(ev.longitude),
            depth=float(ev.depth_km) * 1000.0,
        )
        unc = getattr(ev, "time_uncertainty_s", None)
        if _finite(unc):
            origin.time_errors = QuantityError(uncertainty=float(unc))
        unc = getattr(ev, "depth_uncertainty_km", None)
        if _finite(unc):
            origin.depth_errors = QuantityError(uncertainty=float(unc) * 1000.0)
        unc = getattr(ev, "horizontal_uncertainty_km", None)
        if _finite(unc):
            origin.origin_uncertainty = _origin_uncertainty(float(unc), getattr(ev, "min_horizontal_uncertainty_km", None),
                                                            getattr(ev, "azimuth_max_horizontal_uncertainty_deg", None))
        event = Event(resource_id=rid("event", eid), event_type="earthquake")
        score = getattr(ev, "score", None)
        if _finite(score):
            event.extra = _extra(float(score))
        group = by_event.get(eid)
        if group is not None:
            for a in group.itertuples(index=False):
                pick_rid = rid("pick", a.pick_index)
                pick = Pick(
                    resource_id=pick_rid,
                    time=UTCDateTime(ns=int(a.pick_time.as_unit("ns").value)),
                    waveform_id=_waveform_id(a.station_id),
                    phase_hint=a.phase,
                    evaluation_mode="automatic",
                )
                if _finite(a.pick_score):
                    pick.extra = _extra(float(a.pick_score))
                event.picks.append(pick)
                if _finite(a.amplitude):
                    event.amplitudes.append(
                        Amplitude(
                            resource_id=rid("amplitude", a.pick_index),
                            generic_amplitude=float(a.amplitude),
                            unit="other",
                            type="PGV",
                            pick_id=pick_rid,
                            waveform_id=_waveform_id(a.station_id),
                        )
                    )
                arrival = Arrival(resource_id=rid("arrival", eid, a.pick_index), pick_id=pick_rid, phase=a.phase)
                if _finite(a.residual_s):
                    arrival.time_residual = float(a.residual_s)
                if _finite(a.score):
                    arrival.extra = _extra(float(a.score))
                origin.arrivals.append(arrival)
        n_p = int((group["phase"] == "P").sum()) if group is not None else getattr(ev, "n_p", None)
        n_s = int((group["phase"] == "S").sum()) if group is not None else getattr(ev, "n_s", None)
        rms = getattr(ev, "rms_s", None)
        quality = OriginQuality()
        if _finite(n_p) and _finite(n_s):
            quality.associated_phase_count = int(n_p) + int(n_s)
            quality.used_phase_count = int(n_p) + int(n_s)
        n_stations = getattr(ev, "n_stations", None)
        if _finite(n_stations):
            quality.used_station_count = int(n_stations)
        gap = getattr(ev, "gap_deg", None)
        if _finite(gap):
            quality.azimuthal_gap = float(gap)
        if _finite(rms):
            quality.standard_error = float(rms)
        origin.quality = quality
        event.origins.append(origin)
        event.preferred_origin_id = origin.resource_id
        if _finite(ev.magnitude):
            magnitude = Magnitude(
                resource_id=rid("magnitude", eid),
                mag=float(ev.magnitude),
                origin_id=origin.resource_id,
                magnitude_type=getattr(ev, "magnitude_type", None) or None,
            )
            unc = getattr(ev, "magnitude_uncertainty", None)
            if _finite(unc):
                magnitude.mag_errors = QuantityError(uncertainty=float(unc))
            event.magnitudes.append(magnitude)
            event.preferred_magnitude_id = magnitude.resource_id
        catalog.events.append(event)
    return catalog


def _event_id(event, number: int) -> str:
    """The event's id: ComCat's ``eventid=`` query value, else the last part of its resource id."""
    rid = str(event.resource_id) if event.resource_id else ""
    match = re.search(r"eventid=([^&]+)", rid)
    if match:
        return match.group(1)
    return rid.rstrip("/").rsplit("/", 1)[-1] or str(number)


def from_obspy(catalog, name: str = "Catalog") -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Contract tables ``(events, assignments, picks)`` from an ObsPy ``Catalog``.

    Uses each event's preferred (else first) origin and magnitude; events without an origin are
    skipped with their count in the error if none remains. Picks not referenced by an arrival are
    kept in ``picks`` but not assigned.
    """
    rows, pick_rows, assignment_rows = [], [], []
    for number, event in enumerate(catalog):
        origin = event.preferred_origin() or (event.origins[0] if event.origins else None)
        if origin is None:
            continue
        magnitude = event.preferred_magnitude() or (event.magnitudes[0] if event.magnitudes else None)
        eid = _event_id(event, number)
        arrivals = {str(a.pick_id): a for a in origin.arrivals if a.pick_id is not None}
        amplitudes = {str(a.pick_id): a.generic_amplitude for a in event.amplitudes if a.pick_id is not None}
        n_phase = {"P": 0, "S": 0}
        for pick in event.picks:
            phase = (pick.phase_hint or "?")[:1].upper()
            arrival = arrivals.get(str(pick.resource_id))
            if arrival is not None and arrival.phase:
                phase = arrival.phase[:1].upper()
            pick_rows.append(
                (_station_id(pick.waveform_id), pick.time.datetime, phase, _extra_score(pick),
                 amplitudes.get(str(pick.resource_id), np.nan))
            )
            if arrival is not None:
                n_phase[phase] = n_phase.get(phase, 0) + 1
                residual = arrival.time_residual if arrival.time_residual is not None else np.nan
                assignment_rows.append((len(pick_rows) - 1, eid, phase, residual, _extra_score(arrival)))
        ou = origin.origin_uncertainty
        hu = ou.horizontal_uncertainty if ou else None
        if ou and hu is None:
            hu = ou.max_horizontal_uncertainty
        quality = origin.quality
        rows.append(
            {
                "event_id": eid,
                "time": str(origin.time),
                "latitude": origin.latitude,
                "longitude": origin.longitude,
                "depth_km": origin.depth / 1000.0 if origin.depth is not None else np.nan,
                "magnitude": magnitude.mag if magnitude else np.nan,
                "magnitude_type": (magnitude.magnitude_type or "") if magnitude else "",
                "n_p": n_phase["P"] if arrivals else np.nan,
                "n_s": n_phase["S"] if arrivals else np.nan,
                "score": _extra_score(event),
                "rms_s": quality.standard_error if quality and quality.standard_error is not None else np.nan,
                "horizontal_uncertainty_km": hu / 1000.0 if hu is not None else np.nan,
                "min_horizontal_uncertainty_km": ou.min_horizontal_uncertainty / 1000.0
                if ou and ou.min_horizontal_uncertainty is not None else np.nan,
                "azimuth_max_horizontal_uncertainty_deg": ou.azimuth_max_horizontal_uncertainty
                if ou and ou.azimuth_max_horizontal_uncertainty is not None else np.nan,
                "depth_uncertainty_km": origin.depth_errors.uncertainty / 1000.0
                if origin.depth_errors and origin.depth_errors.uncertainty is not None
                else np.nan,
                "time_uncertainty_s": origin.time_errors.uncertainty
                if origin.time_errors and origin.time_errors.uncertainty is not None
                else np.nan,
                "magnitude_uncertainty": magnitude.mag_errors.uncertainty
                if magnitude and magnitude.mag_errors and magnitude.mag_errors.uncertainty is not None
                else np.nan,
            }
        )
    if not rows:
        raise EmptyInputError(f"{name}: no events with an origin found")
    events = normalise_events(pd.DataFrame(rows), Source(name))
    if not pick_rows:
        return events, empty_assignments(), empty_picks()
    picks = pd.DataFrame(pick_rows, columns=["station_id", "time", "phase", "score", "amplitude"])
    picks["time"] = pd.to_datetime(picks["time"], utc=True).dt.as_unit("ns")
    assignments = pd.DataFrame(assignment_rows, columns=["pick_index", "event_id", "phase", "residual_s", "score"])
    return events, assignments.astype({"pick_index": "int64"}), picks


def read_quakeml(path: Path) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    from obspy import read_events

    try:
        catalog = read_events(str(path))
    except Exception as exc:  # ObsPy raises many exception types for malformed files
        raise InputError(f"{path}: cannot be read as QuakeML ({exc})") from None
    return from_obspy(catalog, str(path))
