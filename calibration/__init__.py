"""Bayesian-optimisation calibration of the generator to a real network.

Imports ``catalogs`` and ``generator``. Its contents arrive with the calibration issue.
"""
