"""Only one beat schedules at a time."""

from __future__ import annotations

from evmonitor.stack.procs import wait_for


def test_a_second_beat_stands_by_until_the_first_is_gone(pipeline):
    """Two beats: one holds the lock, the other waits; kill the first and the second takes over."""
    pipeline.start("beat", "beat")
    wait_for(lambda: "holding the scheduler lock" in pipeline.log("beat"), timeout_s=30, what="first beat")
    pipeline.start("beat-2", "beat")
    wait_for(lambda: "standing by" in pipeline.log("beat-2"), timeout_s=30, what="second beat on standby")
    assert "holding the scheduler lock" not in pipeline.log("beat-2")
    pipeline.kill("beat")
    wait_for(lambda: "holding the scheduler lock" in pipeline.log("beat-2"), timeout_s=30, what="second beat takes over")
