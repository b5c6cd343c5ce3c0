"""Maintainers' tools, run as ``python -m tools.<name>`` from the repository's root: the
dashboard's screenshots and the keypoint codebook's training."""
