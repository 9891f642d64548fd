"""Reference catalogs from an FDSN event service, tested offline on a saved ComCat answer."""

from pathlib import Path

import pandas as pd
import pytest
from obspy import read_events

from catalogs.fdsn import fetch_catalog
from catalogs.schema import InputError

SAVED = Path(__file__).parent / "data" / "comcat_response.xml"
REGION = (32.8, 33.3, -115.9, -115.4)
START, END = pd.Timestamp("2020-10-01T00:00Z"), pd.Timestamp("2020-10-03T00:00Z")


class SavedClient:
    """Answers ``get_events`` from the saved response and records the request."""

    def __init__(self):
        self.requests = []

    def get_events(self, **kwargs):
        self.requests.append(kwargs)
        return read_events(str(SAVED))


class Offline:
    def get_events(self, **kwargs):
        raise ConnectionError("Name or service not known")


def test_fetch_caches_and_reads_the_answer(tmp_path, caplog):
    client = SavedClient()
    events, path = fetch_catalog(REGION, START, END, tmp_path, client=client)
    assert len(events) == 3 and events["event_id"].tolist() == ["ci39462536", "ci39462560", "ci39462600"]
    assert events["magnitude"].tolist() == [2.71, 1.52, 3.14] and events["depth_km"].iloc[0] == pytest.approx(7.84)
    request = client.requests[0]
    assert request["minlatitude"] == 32.8 and request["maxlongitude"] == -115.4
    assert str(request["starttime"]) == "2020-10-01T00:00:00.000000Z"
    # A second call reads the cache and says so; the service is not asked again.
    with caplog.at_level("INFO"):
        again, same = fetch_catalog(REGION, START, END, tmp_path, client=client)
    assert same == path and len(client.requests) == 1 and "cached" in caplog.text
    pd.testing.assert_frame_equal(events, again)


def test_no_network_is_a_clear_error(tmp_path):
    with pytest.raises(InputError, match="could not fetch .* USGS .*without a network"):
        fetch_catalog(REGION, START, END, tmp_path, client=Offline())
    with pytest.raises(InputError, match="unknown event service"):
        fetch_catalog(REGION, START, END, tmp_path, service="nowhere")
