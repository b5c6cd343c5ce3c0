"""Stage timings and the frame-rate meter of the device loop."""

from __future__ import annotations

import pytest

from edgelens.device.timing import RateMeter, StageTimes


def test_stage_times_keep_mean_and_last_per_stage():
    times = StageTimes()
    for ms in (2.0, 4.0, 9.0):
        times.add("featurize", ms)
    times.add("decode", 1.0)
    assert times.mean_ms("featurize") == pytest.approx(5.0)
    assert times.last_ms("featurize") == 9.0
    assert times.mean_ms("decode") == 1.0
    assert times.mean_ms("publish") == 0.0  # never timed


def test_rate_meter_counts_over_its_window_only():
    meter = RateMeter(window_s=2.0)
    for i in range(21):  # 10 per second for 2 s
        meter.tick(100.0 + i * 0.1)
    assert meter.rate(102.0) == pytest.approx(10.0)
    assert meter.rate(110.0) == 0.0  # all ticks aged out
