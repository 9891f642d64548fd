"""Data layer: reading and writing stations, picks and catalogs; matching, G-R analysis, magnitudes.

Imports none of ``generator``, ``calibration`` or ``genie``. The public names::

    from catalogs import read_picks, read_stations, read_catalog, write_catalog
"""

from catalogs.compare import compare_catalogs, summary_table
from catalogs.events import read_associations, read_catalog, write_catalog
from catalogs.fdsn import fetch_catalog
from catalogs.gutenberg_richter import b_value, frequency_magnitude, mc_goodness_of_fit, mc_max_curvature
from catalogs.magnitude import MagnitudeScale, event_magnitudes, fit_station_terms
from catalogs.matching import match_catalogs
from catalogs.pick_overlap import match_by_picks, overlap_scores
from catalogs.picks import attach_stations, read_picks
from catalogs.projection import LocalProjection, epicentral_distance_km
from catalogs.schema import InputError, seconds_since
from catalogs.stations import read_stations

__all__ = [
    "InputError", "LocalProjection", "MagnitudeScale", "attach_stations", "b_value", "compare_catalogs",
    "epicentral_distance_km", "event_magnitudes", "fetch_catalog", "fit_station_terms", "frequency_magnitude",
    "match_by_picks", "match_catalogs", "mc_goodness_of_fit", "mc_max_curvature", "overlap_scores", "read_associations",
    "read_catalog", "read_picks", "read_stations", "seconds_since", "summary_table", "write_catalog",
]
