"""The ``edgelens`` command line: one entry point, one sub-command group per part."""
