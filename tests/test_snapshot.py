"""Snapshots: the first whole JPEG of an MJPEG stream, whatever the camera sends."""

from __future__ import annotations

import time

import pytest

from services.uplink.snapshot import SnapshotError, first_frame, snapshot
from simulator.camera import FRAME, CameraThread, frame


def test_a_frame_is_found_by_its_segments_not_the_first_ff_d9() -> None:
    thumbnail = b"\xff\xd8 a thumbnail \xff\xd9"  # an EXIF thumbnail inside APP1 ends in FF D9
    app1 = b"\xff\xe1" + (len(thumbnail) + 2).to_bytes(2, "big") + thumbnail
    picture = FRAME[:2] + app1 + FRAME[2:]
    stream = b"--boundary\r\nContent-Type: image/jpeg\r\n\r\n" + picture + b"\r\n--boundary"
    assert first_frame(stream) == picture
    assert first_frame(stream[: len(stream) // 2]) is None  # not whole yet: read on


def test_frames_change_and_each_is_whole() -> None:
    one, two = frame(1), frame(2)
    assert one != two
    assert first_frame(one) == one
    assert first_frame(b"noise" + two + b"more") == two


def test_garbage_is_a_typed_error() -> None:
    with pytest.raises(SnapshotError):
        first_frame(b"\xff\xd8\x00\x00 not a marker at all")


def test_a_stream_a_dead_camera_and_no_camera() -> None:
    with CameraThread() as camera:
        picture = snapshot(camera.url)
    assert b"simulator frame" in picture
    with CameraThread(dead=True) as dead, pytest.raises(SnapshotError, match="cannot be read"):
        snapshot(dead.url, deadline_s=0.5)
    with pytest.raises(SnapshotError):
        snapshot("http://127.0.0.1:9/?action=stream", deadline_s=0.5)


def test_a_camera_that_stalls_mid_frame_is_a_typed_error_in_bounded_time() -> None:
    with CameraThread(stall=True) as camera:
        began = time.monotonic()
        with pytest.raises(SnapshotError):
            snapshot(camera.url, deadline_s=1.0)
        assert time.monotonic() - began < 3.0
