import pytest

from scripts.bench_scaling import DECADE_DAYS, DECADE_STATIONS, projection


def test_decade_projection_by_hand():
    rows, total = projection(100.0, 0.5, 1000.0, 16)
    assert total == DECADE_DAYS * DECADE_STATIONS * 1000.0
    # One 16-core machine at 100 picks/s per worker and half efficiency: 800 picks/s.
    one = rows[0]
    assert one["machines"] == 1 and one["workers (cores)"] == 16
    assert float(one["hours"].replace(",", "")) == pytest.approx(total / 800.0 / 3600.0, abs=0.5)
    ten = rows[1]
    assert float(ten["hours"].replace(",", "")) == pytest.approx(total / 8000.0 / 3600.0, abs=0.5)
