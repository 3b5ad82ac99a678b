"""The data directory attacked once more (the durable branch's adversary): each test here
failed on the durable branch before its fix. Real ``chronoid serve`` processes, real sockets.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from chronoid.errors import StoreUnavailable
from chronoid.sequencer.store import FileStore
from tests.sequencer.conftest import StartServer, wait_for_port
from tests.sequencer.test_data_dir import take
from tests.support import wait_until


def test_a_data_dir_moved_away_stays_locked_for_the_server_that_owned_it(
    start_server: StartServer, tmp_path: Path
) -> None:
    """``mv data data.moved`` under a running server: the server recreates ``data`` and
    locks it, but it must keep the lock on the moved directory too: a second server started
    there would resume at the moved state's watermark, below values the first one goes on
    handing out (it released that lock: 2,048 values handed out by both)."""
    data, moved = tmp_path / "data", tmp_path / "data.moved"
    a = start_server(data_dir=data)
    issued = take(a.port, 10)
    data.rename(moved)
    wait_until((data / "sequencer.json").exists, "the state file again", timeout_s=5)
    b = start_server(data_dir=moved, wait=False)
    try:
        wait_for_port(b.port, b.child, 5)
        b_up = True
    except pytest.fail.Exception:
        b_up = False
    issued += take(a.port, 3000)
    if b_up:
        issued += take(b.port, 3000)
    assert len(issued) == len(set(issued)), (
        f"{len(issued) - len(set(issued))} values handed out twice"
    )
    assert not b_up, "a second server started on the moved data directory"


def test_a_newcomer_that_wrote_and_left_is_not_overwritten_when_the_state_is_deleted(
    tmp_path: Path,
) -> None:
    """Lock file deleted, a newcomer takes the directory, reserves up to 3000 and stops,
    then the state file is deleted: the old owner found no state file, took that for "nobody
    wrote" and locked the directory again, writing its own, lower watermark (2000) over the
    newcomer's values 2000..2999. The marker's copy still says 3000: someone else wrote."""
    old = FileStore(tmp_path, watch_interval_s=1.0)
    old.load()
    old.reserve("default", 2000)
    (tmp_path / "sequencer.lock").unlink()
    newcomer = FileStore(tmp_path, watch_interval_s=1.0)
    assert newcomer.load() == {"default": 2000}
    newcomer.reserve("default", 3000)
    newcomer.close()  # or kill -9: the lock is free again
    (tmp_path / "sequencer.json").unlink()
    with pytest.raises(StoreUnavailable, match="not issuing above the last watermark"):
        old.reserve("default", 2500)
    old.close()
    assert FileStore(tmp_path, missing_ok=True).load() == {"default": 3000}
