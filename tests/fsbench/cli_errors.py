"""The bad-input contract of every command, checked one way: one `Error:` line, non-zero exit."""

from __future__ import annotations


def assert_one_line_error(result, *needles: str) -> None:
    """A click result that failed with exactly one line `Error: ...` holding every needle."""
    assert result.exit_code != 0
    assert "Traceback" not in result.output
    lines = [ln for ln in result.output.splitlines() if ln.strip()]
    assert len(lines) == 1, result.output
    assert lines[0].startswith("Error: "), result.output
    for n in needles:
        assert n in lines[0], lines[0]
