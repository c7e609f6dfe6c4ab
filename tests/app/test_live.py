"""`--since` for the live views: durations back from now or timestamps, in UTC."""

import datetime as dt

import pytest

from embedops.app.live import parse_since
from embedops.errors import UsageError

NOW = dt.datetime(2026, 12, 1, 12, 0, tzinfo=dt.timezone.utc)


def test_since_takes_durations_and_timestamps():
    assert parse_since("90m", now=NOW) == "2026-12-01T10:30:00.000+00:00"
    assert parse_since("2d", now=NOW) == "2026-11-29T12:00:00.000+00:00"
    assert parse_since("2026-12-01T08:00", now=NOW) == "2026-12-01T08:00:00.000+00:00"
    assert parse_since("2026-12-01T08:00+01:00", now=NOW) == "2026-12-01T07:00:00.000+00:00"
    assert parse_since(None) is None
    with pytest.raises(UsageError, match="give a duration such as 30s"):
        parse_since("yesterday")
