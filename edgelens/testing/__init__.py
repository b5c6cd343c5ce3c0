"""Harnesses shared by the tests and the benchmarks: Hypothesis strategies for messages,
headless Chromium, process checks, the Milvus server starter, vector builders and the
device-side helpers of the live tests. Nothing in the product imports this package (the
import-direction test checks it); it needs the [dev] extra."""
