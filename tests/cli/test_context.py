"""The CLI's shared plumbing: progress where no terminal shows a bar."""

import logging

from edgelens.cli.context import progress_bar


def test_progress_off_a_terminal_is_log_lines_at_each_tenth(caplog):
    caplog.set_level(logging.INFO, logger="edgelens.cli.context")
    with progress_bar("evaluating", 50) as advance:
        for _ in range(25):
            advance(2)
    lines = [r.getMessage() for r in caplog.records]
    assert lines[0] == "evaluating: 6 of 50" and lines[-2] == "evaluating: 50 of 50"
    assert len(lines) == 11 and lines[-1] == "evaluating: done"
