"""Bayesian-optimisation calibration of the generator to a real network.

Imports ``catalogs`` and ``generator``. The public names::

    from calibration import label_picks, calibrate, CalibrationSettings
"""

from calibration.objective import Objective
from calibration.optimize import CalibrationSettings, calibrate
from calibration.reference import ReferenceEvents, from_associations, label_picks

__all__ = ["CalibrationSettings", "Objective", "ReferenceEvents", "calibrate", "from_associations", "label_picks"]
