"""The CLI's shared plumbing: progress where no terminal shows a bar, errors, log files."""

import io
import logging
import logging.config
import sys

from edgelens.cli.context import configure_logging, log_to_file, print_error, progress_bar


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


def test_a_log_file_starts_afresh_and_outlives_a_library_reconfiguring_logging(tmp_path, capsys):
    """What the demo's log does: a new file each start, the console keeps warnings only
    meanwhile, and lines after a library's dictConfig (pymilvus's import closes every
    handler) still reach the file."""
    path = tmp_path / "demo" / "demo.log"
    path.parent.mkdir()
    path.write_text("the last run's lines\n")
    log = logging.getLogger("edgelens.test")
    try:
        configure_logging("INFO")
        with log_to_file(path):
            log.info("before")
            logging.config.dictConfig({"version": 1, "disable_existing_loggers": False})
            log.info("after")
            log.warning("a warning")
        log.info("after the block")
    finally:
        configure_logging("INFO")  # the root's handlers as the CLI sets them
    lines = [line.split(": ", 1)[1] for line in path.read_text().splitlines()]
    assert lines == ["before", "after", "a warning"]
    console = [line.split(": ", 1)[1] for line in capsys.readouterr().err.splitlines()]
    assert console == ["a warning", "after the block"], "warnings only, then all again"


def test_the_console_is_stderr_as_it_is_when_a_line_is_logged(capsys):
    """An in-process CLI run (CliRunner) swaps sys.stderr and closes its own afterwards:
    lines logged later go to the stderr of then, not to the closed one."""
    configure_logging("INFO")
    log, swapped, before = logging.getLogger("edgelens.test"), io.StringIO(), sys.stderr
    sys.stderr = swapped
    try:
        log.warning("while swapped")
        said = swapped.getvalue()
    finally:
        sys.stderr = before
        swapped.close()
    log.warning("afterwards")
    err = capsys.readouterr().err
    assert said.endswith("edgelens.test: while swapped\n")
    assert err.endswith("edgelens.test: afterwards\n") and "Logging error" not in err
