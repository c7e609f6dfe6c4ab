"""Cross-process locks: a file lock on a local store, a lease object on an s3:// store."""

import json
import time

import pytest

from embedops.errors import LockHeldError
from embedops.store import Store


def test_file_lock_refuses_a_second_holder_naming_the_first(tmp_path):
    store = Store.open(str(tmp_path / "s"))
    with store.lock("job", what="the job") as first:
        assert not first.waited
        with pytest.raises(LockHeldError, match=r"the job is already running: tester@ci \(pid \d+ on"):
            with store.lock("job", what="the job"):
                pass
    with store.lock("job", what="the job") as again:  # released on exit
        assert not again.waited


def test_lease_on_an_s3_store_is_exclusive_renewed_and_taken_over_once_expired(s3_uri):
    store = Store.open(s3_uri)
    lease = store.lock("job", what="the job")
    lease.ttl = 2.0
    with lease:
        with pytest.raises(LockHeldError, match="the job is already running: tester@ci"):
            with store.lock("job", what="the job"):
                pass
        first = json.loads(store.objects.read(lease._key))
        time.sleep(1.2)  # the holder renews every ttl/4 seconds
        assert json.loads(store.objects.read(lease._key))["expires"] > first["expires"]
    assert json.loads(store.objects.read("locks/job/000000000001.json"))["state"] == "released"

    # a holder that died without releasing: its lease expires and the next taker gets it
    store.objects.create("locks/job/000000000002.json",
                         json.dumps({"state": "held", "actor": "ghost", "pid": 1, "host": "gone", "since": 0,
                                     "expires": time.time() - 1}).encode())
    with store.lock("job", what="the job") as taken:
        assert taken._key.endswith("000000000003.json") and not taken.waited


def test_waiting_for_a_lease_reports_the_holder(s3_uri):
    store = Store.open(s3_uri)
    store.objects.create("locks/job/000000000001.json",
                         json.dumps({"state": "held", "actor": "builder", "pid": 7, "host": "h", "since": 0,
                                     "expires": time.time() + 1.5}).encode())
    told = []
    lease = store.lock("job", what="the job", wait=True, on_wait=told.append)
    lease.poll = 0.2
    with lease:
        assert lease.waited and told and "builder (pid 7 on h" in told[0]
