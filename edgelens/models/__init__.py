"""Export and optimisation of the featurizer (needs the ``[export]`` extra: torch, onnx)."""
