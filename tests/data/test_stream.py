"""BatchStream: deterministic, process-sharded, resumable."""
import numpy as np
import pytest

from grux.data.stream import BatchStream, seeded_rng
from grux.tasks.echo import stream_window


def _fn(i):
    rng = seeded_rng(7, i)
    return {"x": rng.normal(size=(8, 3)), "i": np.full(8, i)}


def test_resume_from_saved_position_gives_the_same_batches():
    a = BatchStream(_fn, 8)
    seen = [next(a) for _ in range(5)]
    b = BatchStream(_fn, 8)
    for _ in range(2):
        next(b)
    state = b.get_state()
    c = BatchStream(_fn, 8)
    c.set_state(state)
    for want in seen[2:]:
        got = next(c)
        np.testing.assert_array_equal(got["x"], want["x"])


def test_processes_take_disjoint_slices_that_tile_the_global_batch():
    full = next(BatchStream(_fn, 8))
    parts = [next(BatchStream(_fn, 8, process_index=p, process_count=4)) for p in range(4)]
    np.testing.assert_array_equal(np.concatenate([p["x"] for p in parts]), full["x"])


def test_finite_stream_stops_and_restarts():
    s = BatchStream(_fn, 8, num_batches=3)
    assert [int(b["i"][0]) for b in s] == [0, 1, 2]
    assert [int(b["i"][0]) for b in s.restart()] == [0, 1, 2]


def test_bad_state_and_bad_sizes_are_named():
    s = BatchStream(_fn, 8, num_batches=3)
    with pytest.raises(ValueError, match="malformed data-stream state"):
        s.set_state({"pos": 1})
    with pytest.raises(ValueError, match="position 9 outside the stream of 3"):
        s.set_state({"position": 9})
    with pytest.raises(ValueError, match="not divisible by the 3 processes"):
        BatchStream(_fn, 8, process_count=3)
    with pytest.raises(ValueError, match="does not lead with the global batch size 4"):
        next(BatchStream(_fn, 4))


def test_echo_windows_continue_the_same_stream():
    """Window i+1 of a row continues window i: targets of the first d steps of a window are
    the last d inputs of the previous one."""
    from grux.tasks.echo import EchoTask
    from grux.train.config import base_config
    c = base_config("echo")
    c.task.window, c.task.delay = 10, 3
    s = EchoTask(c).train_stream(4, 0, 1)
    b0, b1 = next(s), next(s)
    np.testing.assert_array_equal(b1["y"][:, :3], b0["x"][:, -3:])
    np.testing.assert_array_equal(b1["y"][:, 3:], b1["x"][:, :-3])
    assert (b0["weight"][:, :3] == 0).all() and (b1["weight"] == 1).all()
    np.testing.assert_array_equal(stream_window(0, 0, 2, 1, 10), b1["x"][2])
