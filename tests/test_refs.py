import threading

import pytest

from embedops.errors import ConflictError, UsageError
from embedops.refs import RefLog


def test_append_then_head_and_records(tmp_path):
    log = RefLog(tmp_path)
    assert log.head("aliases/prod") is None
    log.append("aliases/prod", 0, {"value": "a"})
    log.append("aliases/prod", 1, {"value": "b"})
    assert log.head("aliases/prod").payload == {"value": "b"}
    assert [r.seq for r in log.records("aliases/prod")] == [1, 2]
    assert log.keys("aliases") == ["aliases/prod"]


def test_stale_writer_loses(tmp_path):
    log = RefLog(tmp_path)
    log.append("k", 0, {"v": 1})
    with pytest.raises(ConflictError):
        log.append("k", 0, {"v": 2})
    assert log.head("k").payload == {"v": 1}


def test_threads_racing_for_one_slot_have_one_winner(tmp_path):
    log = RefLog(tmp_path)
    barrier = threading.Barrier(8)
    wins, losses = [], []

    def go(i):
        barrier.wait()
        try:
            log.append("k", 0, {"v": i})
            wins.append(i)
        except ConflictError:
            losses.append(i)

    threads = [threading.Thread(target=go, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(wins) == 1 and len(losses) == 7
    assert log.head("k").payload == {"v": wins[0]}
    assert not [p for p in (tmp_path / "k").iterdir() if p.name.startswith(".tmp")]


def test_leftover_temp_files_are_ignored(tmp_path):
    log = RefLog(tmp_path)
    log.append("k", 0, {"v": 1})
    (tmp_path / "k" / ".tmp-deadbeef").write_text("{half")
    assert log.head("k").seq == 1


@pytest.mark.parametrize("key", ["", "../x", "a//b", ".hidden"])
def test_bad_keys_are_refused(tmp_path, key):
    with pytest.raises(UsageError):
        RefLog(tmp_path).head(key)


def test_records_reads_the_last_ones_before_a_seq(tmp_path):
    log = RefLog(tmp_path)
    for i in range(1, 8):
        log.append("aliases/p", i - 1, {"value": i})
    assert [r.seq for r in log.records("aliases/p", last=3)] == [5, 6, 7]
    assert [r.seq for r in log.records("aliases/p", last=3, before=5)] == [2, 3, 4]
    assert [r.seq for r in log.records("aliases/p", last=3, before=2)] == [1]
    assert len(log.records("aliases/p")) == 7
