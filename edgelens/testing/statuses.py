"""Device statuses for tests: a good one, hostile variants of it (each must be refused),
and a device's health figures as the loop computes them."""

from __future__ import annotations

import time

from edgelens.device.loop import DeviceStats

GOOD = {"state": "online", "device_id": "cam-1", "model_id": "m-1", "ts": time.time(), "fps": 14.5}

# What a broken or hostile device may send instead, each refused.
HOSTILE = {
    "ts far out": {**GOOD, "ts": 1e308},
    "ts negative": {**GOOD, "ts": -1.0},
    "NaN": {**GOOD, "fps": float("nan")},
    "Infinity": {**GOOD, "featurize_ms": float("inf")},
    "fps absurd": {**GOOD, "fps": 1e6},
    "negative count": {**GOOD, "dropped": -1},
    "count beyond 2^53": {**GOOD, "published": 2**64},
    "10k-char model id": {**GOOD, "model_id": "m" * 10_000},
    "long provider": {**GOOD, "provider": "p" * 100},
    "unknown key": {**GOOD, "evil": 1},
    "nested object": {**GOOD, "views_sent": {"a": 1}},
    "number as text": {**GOOD, "fps": "14.5"},
    "count as float": {**GOOD, "captured": 3.0},
    "bool as count": {**GOOD, "suppressed": True},
    "state unknown": {**GOOD, "state": "hacked"},
    "state missing": {k: v for k, v in GOOD.items() if k != "state"},
    "bad device id": {**GOOD, "device_id": "cam/../x"},
    "wire dtype unknown": {**GOOD, "wire_dtype": "float64"},
    "number as a yes or no": {**GOOD, "sends_views": 1},
}


def device_stats(**changes: float) -> DeviceStats:
    figures = dict.fromkeys(DeviceStats.__dataclass_fields__, 0)
    figures.update(captured=10**9, published=2 * 10**8, views_sent=12_345, fps=14.93)
    figures.update(featurize_ms_mean=8.314, publish_ms_mean=0.42, focus_ms_mean=31.7)
    figures.update(changes)
    return DeviceStats(**figures)
