"""Real sample photos and seeded camera-like views of them: the demo catalog, INT8
calibration and evaluation all draw on them, so they sit below all three."""
