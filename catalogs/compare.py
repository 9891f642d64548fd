"""Comparing a catalog with a reference catalog: matching, recall/precision, G-R, differences."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from catalogs.fileio import write_csv_atomic, write_text_atomic
from catalogs.gutenberg_richter import b_value, mc_goodness_of_fit, mc_max_curvature
from catalogs.matching import match_catalogs
from catalogs.projection import epicentral_offset_km
from catalogs.schema import format_times


@dataclass
class Comparison:
    """Result of :func:`compare_catalogs`.

    ``pairs``: the matched pairs (see :func:`catalogs.matching.match_catalogs`); ``missed``:
    reference events without a match; ``new``: catalog events without a match; ``report``: a
    JSON-ready summary.
    """

    pairs: pd.DataFrame
    missed: pd.DataFrame
    new: pd.DataFrame
    report: dict


def _clean(value):
    """JSON-ready: NaN/inf -> None, numpy scalars -> Python."""
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return None if not math.isfinite(value) else float(value)
    return value


def _ratio(a: int, b: int) -> float:
    return a / b if b else float("nan")


def gutenberg_richter_summary(magnitudes, dm: float = 0.1, min_events: int = 50) -> dict:
    """Mc (maximum curvature and goodness of fit) and the b-value above the chosen Mc."""
    m = np.asarray(magnitudes, dtype="float64")
    m = m[np.isfinite(m)]
    if m.size == 0:
        return {"n": 0, "mc_maxc": None, "mc": None, "mc_method": None, "b": None, "b_sigma": None, "a": None,
                "n_above_mc": 0}
    completeness = mc_goodness_of_fit(m, dm, min_events=min_events)
    fit = b_value(m, completeness.mc, dm)
    return {
        "n": int(m.size),
        "mc_maxc": mc_max_curvature(m, dm),
        "mc": completeness.mc,
        "mc_method": completeness.method,
        "b": fit.b,
        "b_sigma": fit.sigma,
        "a": fit.a,
        "n_above_mc": fit.n,
    }


def _by_magnitude(catalog, reference, pairs, width: float) -> list[dict]:
    mags = np.concatenate([catalog["magnitude"].to_numpy(dtype="float64"), reference["magnitude"].to_numpy(dtype="float64")])
    mags = mags[np.isfinite(mags)]
    if mags.size == 0:
        return []
    edges = np.arange(np.floor(mags.min() / width) * width, mags.max() + width, width)
    ref_mag = reference["magnitude"].to_numpy(dtype="float64")
    cat_mag = catalog["magnitude"].to_numpy(dtype="float64")
    ref_hit = np.zeros(len(reference), bool)
    ref_hit[pairs["reference_index"].to_numpy(dtype=int)] = True
    cat_hit = np.zeros(len(catalog), bool)
    cat_hit[pairs["catalog_index"].to_numpy(dtype=int)] = True
    ref_bin = np.digitize(ref_mag, edges) - 1
    cat_bin = np.digitize(cat_mag, edges) - 1
    n_bins = len(edges) - 1
    n_ref = np.bincount(ref_bin[np.isfinite(ref_mag)], minlength=n_bins)[:n_bins]
    k_ref = np.bincount(ref_bin[np.isfinite(ref_mag) & ref_hit], minlength=n_bins)[:n_bins]
    n_cat = np.bincount(cat_bin[np.isfinite(cat_mag)], minlength=n_bins)[:n_bins]
    k_cat = np.bincount(cat_bin[np.isfinite(cat_mag) & cat_hit], minlength=n_bins)[:n_bins]
    return [
        {
            "magnitude_min": round(float(edges[b]), 6),
            "magnitude_max": round(float(edges[b + 1]), 6),
            "n_reference": int(n_ref[b]),
            "n_reference_matched": int(k_ref[b]),
            "recall": _ratio(int(k_ref[b]), int(n_ref[b])),
            "n_catalog": int(n_cat[b]),
            "n_catalog_matched": int(k_cat[b]),
            "precision": _ratio(int(k_cat[b]), int(n_cat[b])),
        }
        for b in range(n_bins)
    ]


def _difference_stats(values: np.ndarray) -> dict:
    v = values[np.isfinite(values)]
    if v.size == 0:
        return {"n": 0, "median": None, "median_abs": None, "p90_abs": None, "mean": None, "std": None}
    return {
        "n": int(v.size),
        "median": float(np.median(v)),
        "median_abs": float(np.median(np.abs(v))),
        "p90_abs": float(np.percentile(np.abs(v), 90)),
        "mean": float(v.mean()),
        "std": float(v.std()),
    }


SIGMAS = (1, 2, 3)


def _reference_variance(reference: pd.DataFrame, column: str) -> np.ndarray:
    """``[n]`` the reference's own variance from ``column`` (its 1-sigma), 0 where it gives none."""
    if column not in reference.columns:
        return np.zeros(len(reference))
    sigma = reference[column].to_numpy(dtype="float64")
    return np.where(np.isfinite(sigma), sigma, 0.0) ** 2


def uncertainty_coverage(catalog: pd.DataFrame, reference: pd.DataFrame, catalog_index, reference_index) -> dict | None:
    """How often the matched reference events lie within 1, 2 and 3 sigmas of the catalog's
    events (rows ``catalog_index`` of ``catalog`` against ``reference_index`` of ``reference``):
    the epicentre within the error ellipse (``min_horizontal_uncertainty_km`` and
    ``azimuth_max_horizontal_uncertainty_deg`` beside ``horizontal_uncertainty_km``; a circle of
    the semi-major axis where the ellipse is missing), depth and origin time within their sigmas.
    Where the reference gives its own 1-sigma errors (the same columns; ComCat's horizontalError,
    depthError), they are added in quadrature (its horizontal one as a circle), so the test is
    of both catalogs' errors together; elsewhere the differences include the reference's errors
    unaccounted (``with_reference_error`` counts the pairs that had them). A normal error lies
    within 1 / 2 / 3 sigmas 68 / 95 / 99.7 % of the time, a 2-D normal within the ellipses 39 /
    86 / 99 %. None when the catalog has no horizontal uncertainties."""
    if "horizontal_uncertainty_km" not in catalog.columns:
        return None
    ours = catalog.iloc[np.asarray(catalog_index, dtype=np.int64)]
    theirs = reference.iloc[np.asarray(reference_index, dtype=np.int64)]
    major = ours["horizontal_uncertainty_km"].to_numpy(dtype="float64")
    east, north = epicentral_offset_km(ours["latitude"].to_numpy(), ours["longitude"].to_numpy(),
                                       theirs["latitude"].to_numpy(), theirs["longitude"].to_numpy())
    circle = _reference_variance(theirs, "horizontal_uncertainty_km")
    ellipse = np.hypot(east, north) / np.sqrt(major**2 + circle)
    columns = ("min_horizontal_uncertainty_km", "azimuth_max_horizontal_uncertainty_deg")
    if all(c in ours.columns for c in columns):
        minor = ours[columns[0]].to_numpy(dtype="float64")
        azimuth = np.radians(ours[columns[1]].to_numpy(dtype="float64"))
        along = east * np.sin(azimuth) + north * np.cos(azimuth)
        across = east * np.cos(azimuth) - north * np.sin(azimuth)
        full = np.isfinite(minor) & np.isfinite(azimuth) & (minor > 0)
        # A circle added to the ellipse keeps its axes: the variances add along each.
        ellipse[full] = np.hypot(along[full] / np.sqrt(major[full] ** 2 + circle[full]),
                                 across[full] / np.sqrt(minor[full] ** 2 + circle[full]))
    dt = (pd.DatetimeIndex(ours["time"]) - pd.DatetimeIndex(theirs["time"])).total_seconds().to_numpy()
    scaled = {"epicentre": (ellipse, circle)}
    for name, column, difference in (
            ("depth", "depth_uncertainty_km", ours["depth_km"].to_numpy() - theirs["depth_km"].to_numpy()),
            ("origin_time", "time_uncertainty_s", dt)):
        if column in ours.columns:
            theirs_variance = _reference_variance(theirs, column)
            scaled[name] = (np.abs(difference) / np.sqrt(ours[column].to_numpy(dtype="float64") ** 2 + theirs_variance),
                            theirs_variance)
    out = {}
    for name, (values, theirs_variance) in scaled.items():
        finite = np.isfinite(values)
        values = values[finite]
        out[name] = {"n": int(values.size), "within": [float(np.mean(values <= k)) if values.size else None
                                                       for k in SIGMAS],
                     "with_reference_error": int((theirs_variance[finite] > 0).sum())}
    return out


def compare_catalogs(
    catalog: pd.DataFrame,
    reference: pd.DataFrame,
    max_dt_s: float = 3.0,
    max_dist_km: float = 15.0,
    magnitude_bin: float = 0.5,
    dm: float = 0.1,
    min_events_mc: int = 50,
) -> Comparison:
    """Match ``catalog`` to ``reference`` and summarise detection and location agreement.

    Recall is matched / reference events, precision matched / catalog events; per magnitude bin
    of width ``magnitude_bin`` recall uses the reference magnitude and precision the catalog's.
    Mc and b (binning ``dm``) are reported per catalog; location, time, depth and magnitude
    differences (catalog minus reference, s and km) as median, median and 90th percentile of the
    absolute value, mean and standard deviation.
    """
    pairs = match_catalogs(catalog, reference, max_dt_s=max_dt_s, max_dist_km=max_dist_km)
    k = len(pairs)
    recall, precision = _ratio(k, len(reference)), _ratio(k, len(catalog))
    missed = reference.drop(index=reference.index[pairs["reference_index"].to_numpy(dtype=int)])
    new = catalog.drop(index=catalog.index[pairs["catalog_index"].to_numpy(dtype=int)])
    report = {
        "settings": {"max_dt_s": max_dt_s, "max_dist_km": max_dist_km, "magnitude_bin": magnitude_bin, "dm": dm},
        "counts": {
            "catalog": len(catalog),
            "reference": len(reference),
            "matched": k,
            "missed": len(missed),
            "new": len(new),
        },
        "recall": recall,
        "precision": precision,
        "f1": 2 * recall * precision / (recall + precision) if k else 0.0,
        "by_magnitude": _by_magnitude(catalog, reference, pairs, magnitude_bin),
        "gutenberg_richter": {
            "catalog": gutenberg_richter_summary(catalog["magnitude"], dm, min_events_mc),
            "reference": gutenberg_richter_summary(reference["magnitude"], dm, min_events_mc),
        },
        "differences": {
            name: _difference_stats(pairs[name].to_numpy(dtype="float64"))
            for name in ("dt_s", "distance_km", "ddepth_km", "dmagnitude")
        },
        "uncertainty_coverage": uncertainty_coverage(catalog, reference, pairs["catalog_index"],
                                                     pairs["reference_index"]),
        "time_range": {
            "start": str(min(catalog["time"].min(), reference["time"].min())),
            "end": str(max(catalog["time"].max(), reference["time"].max())),
        },
    }
    return Comparison(pairs, missed.reset_index(drop=True), new.reset_index(drop=True), _clean(report))


def summary_table(report: dict) -> str:
    """A short plain-text table of a comparison report."""
    counts = report["counts"]
    gr = report["gutenberg_richter"]
    diff = report["differences"]

    def fmt(value, spec=".3f"):
        return "-" if value is None else format(value, spec)

    def b(side):
        return f"{fmt(gr[side]['b'], '.2f')} ± {fmt(gr[side]['b_sigma'], '.2f')}"

    def mc(side):
        return f"{fmt(gr[side]['mc'], '.1f')} ({gr[side]['mc_method'] or '-'})"

    lines = [
        f"{'':16s}{'catalog':>16s}{'reference':>16s}",
        f"{'events':16s}{counts['catalog']:>16d}{counts['reference']:>16d}",
        f"{'Mc':16s}{mc('catalog'):>16s}{mc('reference'):>16s}",
        f"{'Mc (max. curv.)':16s}{fmt(gr['catalog']['mc_maxc'], '.1f'):>16s}{fmt(gr['reference']['mc_maxc'], '.1f'):>16s}",
        f"{'b-value':16s}{b('catalog'):>16s}{b('reference'):>16s}",
        f"matched {counts['matched']}: recall {fmt(report['recall'])}, precision {fmt(report['precision'])}, "
        f"F1 {fmt(report['f1'])}",
        f"matched differences (median |x|, 90% |x|): time {fmt(diff['dt_s']['median_abs'], '.2f')}, "
        f"{fmt(diff['dt_s']['p90_abs'], '.2f')} s; epicentre {fmt(diff['distance_km']['median_abs'], '.2f')}, "
        f"{fmt(diff['distance_km']['p90_abs'], '.2f')} km; depth {fmt(diff['ddepth_km']['median_abs'], '.2f')}, "
        f"{fmt(diff['ddepth_km']['p90_abs'], '.2f')} km; magnitude {fmt(diff['dmagnitude']['median_abs'], '.2f')}, "
        f"{fmt(diff['dmagnitude']['p90_abs'], '.2f')}",
    ]
    coverage = report.get("uncertainty_coverage")
    if coverage and coverage["epicentre"]["n"]:
        parts = [f"{name.replace('_', ' ')} " + "/".join(fmt(w, ".2f") for w in part["within"])
                 for name, part in coverage.items() if part["n"]]
        lines.append("reference within the catalog's 1/2/3-sigma uncertainties (normal: 0.68/0.95/1.00, "
                     "ellipse 0.39/0.86/0.99): " + ", ".join(parts))
    return "\n".join(lines)


def write_comparison(catalog, reference, out: Path, labels: dict, stations=None, max_dt: float = 3.0,
                     max_dist: float = 15.0, magnitude_bin: float = 0.5, dm: float = 0.1,
                     extra: dict | None = None) -> dict:
    """Match ``catalog`` to ``reference`` and write ``report.json``, the matched / missed / new
    CSVs and the four figures into ``out``; returns the report."""
    from catalogs.events import write_catalog
    from catalogs.plots import plot_differences, plot_gutenberg_richter, plot_map, plot_recall

    comparison = compare_catalogs(catalog, reference, max_dt_s=max_dt, max_dist_km=max_dist,
                                  magnitude_bin=magnitude_bin, dm=dm)
    report = {**(extra or {}), "labels": labels, **comparison.report}
    out.mkdir(parents=True, exist_ok=True)
    pairs = comparison.pairs.copy()
    pairs.insert(4, "reference_time",
                 format_times(reference["time"].iloc[pairs["reference_index"].to_numpy(dtype=int)]).to_numpy())
    pairs.insert(5, "reference_magnitude", reference["magnitude"].to_numpy()[pairs["reference_index"].to_numpy(dtype=int)])
    write_csv_atomic(pairs, out / "matched.csv")
    write_catalog(comparison.missed, None, None, out / "missed.csv")
    write_catalog(comparison.new, None, None, out / "new.csv")
    plot_gutenberg_richter({"catalog": catalog["magnitude"], "reference": reference["magnitude"]},
                           report["gutenberg_richter"], out / "gutenberg_richter.png", dm=dm, labels=labels)
    plot_map(catalog, reference, out / "map.png", stations=stations, missed=comparison.missed, labels=labels)
    plot_recall(report["by_magnitude"], out / "recall_vs_magnitude.png")
    plot_differences(comparison.pairs, out / "differences.png")
    write_text_atomic(out / "report.json", json.dumps(report, indent=2) + "\n")
    return report
