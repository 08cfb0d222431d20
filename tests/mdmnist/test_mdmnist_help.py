"""-h works for every command, and every option has help text."""

from __future__ import annotations

import click
import pytest
from click.testing import CliRunner
from mdmnist.cli import cli

COMMANDS = [[], ["generate"], ["verify"], ["preview"], ["merge"]]


@pytest.mark.parametrize("command", COMMANDS)
@pytest.mark.parametrize("flag", ["-h", "--help"])
def test_help_flags(command, flag):
    result = CliRunner().invoke(cli, [*command, flag])
    assert result.exit_code == 0, result.output
    assert "Usage:" in result.output and "Error" not in result.output


@pytest.mark.parametrize("command", COMMANDS)
def test_every_option_has_help(command):
    cmd = cli.commands[command[0]] if command else cli
    missing = [
        p.opts[0] for p in cmd.params if isinstance(p, click.Option) and not (p.help or "").strip()
    ]
    assert missing == []
