"""The benchmarks: each module measures one feature beside its baseline in the same run and
writes its section of docs/benchmarks.md with the command that made it. Run one as
``python -m benchmarks.<name>`` from the repository's root; ``make bench`` runs them all."""
