"""Synthetic pick generator (travel times, detection model, false picks).

Imports only ``catalogs``. The public names::

    from generator import GeneratorParams, Network, TravelTimes, VelocityModel, generate
"""

from generator.network import Network
from generator.params import GeneratorParams
from generator.synthesize import generate, travel_time_extent
from generator.traveltimes import TravelTimes
from generator.velocity import VelocityModel, load_velocity_model

__all__ = ["GeneratorParams", "Network", "TravelTimes", "VelocityModel", "generate", "load_velocity_model",
           "travel_time_extent"]
