"""Reference catalogs fetched from an FDSN event service (USGS ComCat by default) through ObsPy.

:func:`fetch_catalog` asks the service for the events in a latitude/longitude box and a time
range, writes the answer as QuakeML into a cache directory (named by service, box and times) and
reads it back in the contract's columns. A second call with the same request reads the cached
file and says so; nothing is fetched again. Without a network (or when the service fails) it
raises :class:`~catalogs.schema.InputError` saying how to proceed offline.
"""

from __future__ import annotations

import hashlib
import logging
import os
from pathlib import Path

import pandas as pd

from catalogs.events import read_catalog
from catalogs.fileio import atomic_path
from catalogs.schema import InputError

logger = logging.getLogger(__name__)

# Names accepted by ``--reference`` for a catalog fetched online, and the ObsPy service they use.
SERVICES = {"usgs": "USGS"}


def cache_name(service: str, region, start: pd.Timestamp, end: pd.Timestamp) -> str:
    """File name of a cached answer: service, times and a digest of the exact request."""
    request = f"{service}|{','.join(f'{v:.4f}' for v in region)}|{start.isoformat()}|{end.isoformat()}"
    digest = hashlib.sha1(request.encode()).hexdigest()[:10]
    return f"{service.lower()}_{start:%Y%m%dT%H%M%S}_{end:%Y%m%dT%H%M%S}_{digest}.xml"


def fetch_catalog(region, start, end, cache_dir: str | os.PathLike, service: str = "usgs",
                  client=None) -> tuple[pd.DataFrame, Path]:
    """Events of ``service`` in ``region = (lat_min, lat_max, lon_min, lon_max)`` (deg) between
    ``start`` and ``end`` (UTC), as a contract events table, and the cached QuakeML file.

    ``client``: an object with ObsPy's ``get_events`` (default ``obspy.clients.fdsn.Client``
    for the service); tests pass one that answers from a saved response.
    """
    if service.lower() not in SERVICES:
        raise InputError(f"unknown event service {service!r}; known: {sorted(SERVICES)}")
    start, end = pd.Timestamp(start), pd.Timestamp(end)
    path = Path(cache_dir) / cache_name(service, region, start, end)
    if path.is_file():
        logger.info("reference catalog: using the cached %s answer %s", SERVICES[service.lower()], path)
        return read_catalog(path), path
    from obspy import UTCDateTime

    lat_min, lat_max, lon_min, lon_max = (float(v) for v in region)
    name = SERVICES[service.lower()]
    try:
        if client is None:
            from obspy.clients.fdsn import Client

            client = Client(name, timeout=60)
        catalog = client.get_events(starttime=UTCDateTime(start.to_pydatetime()),
                                    endtime=UTCDateTime(end.to_pydatetime()), minlatitude=lat_min,
                                    maxlatitude=lat_max, minlongitude=lon_min, maxlongitude=lon_max,
                                    orderby="time-asc")
    except Exception as exc:  # noqa: BLE001 - any failure of the service or the network
        if type(exc).__name__ == "FDSNNoDataException":
            raise InputError(f"the {name} event service has no events in latitude {lat_min:.3f}..{lat_max:.3f}, "
                             f"longitude {lon_min:.3f}..{lon_max:.3f} between {start} and {end}") from None
        raise InputError(f"could not fetch the reference catalog from the {name} FDSN event service "
                         f"({type(exc).__name__}: {exc}); without a network, download it elsewhere "
                         "(e.g. the ComCat CSV) and pass the file instead") from None
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        catalog.write(str(tmp), format="QUAKEML")
    logger.info("reference catalog: %d events fetched from %s, cached in %s", len(catalog), name, path)
    if len(catalog) == 0:
        raise InputError(f"the {name} event service returned no events for the run's region and time range")
    return read_catalog(path), path
