"""frame → vector: the one featurizer shared by the device loop and catalog indexing."""
