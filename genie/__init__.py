"""GENIE-style graph neural network phase associator and the ``genie`` command.

Top of the import graph: ``catalogs`` <- ``generator`` <- ``calibration`` <- ``genie``.
"""

__version__ = "0.1.0"
