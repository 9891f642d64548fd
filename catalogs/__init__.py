"""Data layer: reading and writing stations, picks and catalogs; matching and G-R analysis.

Imports none of ``generator``, ``calibration`` or ``genie``.
"""
