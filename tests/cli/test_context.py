"""The CLI's shared plumbing: progress where no terminal shows a bar."""

import logging

from edgelens.cli.context import print_error, progress_bar


def test_progress_off_a_terminal_is_log_lines_at_each_tenth(caplog):
    caplog.set_level(logging.INFO, logger="edgelens.cli.context")
    with progress_bar("evaluating", 50) as advance:
        for _ in range(25):
            advance(2)
    lines = [r.getMessage() for r in caplog.records]
    assert lines[0] == "evaluating: 6 of 50" and lines[-2] == "evaluating: 50 of 50"
    assert len(lines) == 11 and lines[-1] == "evaluating: done"


def test_an_error_is_printed_as_it_is_never_wrapped_nor_read_as_markup(capsys):
    message = f"item [bold]{'x' * 120}[/bold] has no 'image' column [see README]"
    print_error("error", message)
    printed = capsys.readouterr().err
    assert printed == f"error: {message}\n", "one line, the brackets kept"
