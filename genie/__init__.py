"""GENIE-style graph neural network phase associator and the ``genie`` command.

Top of the import graph: ``catalogs`` <- ``generator`` <- ``calibration`` <- ``genie``. The
public names (imported on first use, so that ``genie --help`` does not load torch)::

    from genie import Associator
    events, assignments = Associator.from_pretrained("model_dir").associate(picks, stations)
    summary = SelfTrainer(picks, stations, "out", reference=catalog, model_dir="model_dir").run()
"""

import importlib

__version__ = "0.2.0"

_PUBLIC = {
    "Associator": "genie.associate",
    "AssociatorSettings": "genie.associate",
    "DetectSettings": "genie.detect",
    "GenieModel": "genie.model",
    "ModelConfig": "genie.model",
    "TrainConfig": "genie.train",
    "train": "genie.train",
    "SelfTrainer": "genie.selftrain",
    "SelfTrainSettings": "genie.selftrain",
    "ConfidenceSettings": "genie.pseudolabels",
}

__all__ = ["__version__", *_PUBLIC]


def __getattr__(name: str):
    if name in _PUBLIC:
        return getattr(importlib.import_module(_PUBLIC[name]), name)
    raise AttributeError(f"module 'genie' has no attribute {name!r}")
