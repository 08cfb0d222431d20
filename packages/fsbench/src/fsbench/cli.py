"""The ``fsbench`` command: run a setting, evaluate a trained run, reproduce a table, render tables.

Each subcommand lives in ``fsbench/commands/``; this module is the group and its error handling.
User mistakes (FsbenchError, click usage errors) print one line and exit non-zero, no traceback;
a bad setting is named by its flag (SettingError.for_cli). What is happening (data loaded,
device, an estimate of the run, progress without a terminal) goes to stderr as plain lines
through the ``fsbench`` logger; ``--quiet`` keeps only warnings.
"""

from __future__ import annotations

import sys

import click

from fsbench.commands.common import configure_logging, one_line
from fsbench.engine.stop import RunStopped
from fsbench.errors import FsbenchError
from fsbench.settings import SettingError

_configure_logging = configure_logging  # the name other commands import from here


class FsbenchGroup(click.Group):
    """A click group whose errors are one line on stderr and a non-zero exit code."""

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra):
        self.argv = list(sys.argv[1:] if args is None else args)  # for run --nproc
        try:
            rv = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        except click.ClickException as exc:
            click.echo(f"Error: {one_line(exc.format_message())}", err=True)
            sys.exit(exc.exit_code)
        except SettingError as exc:
            click.echo(f"Error: {one_line(exc.for_cli())}", err=True)
            sys.exit(1)
        except FsbenchError as exc:
            click.echo(f"Error: {one_line(str(exc))}", err=True)
            sys.exit(1)
        except RunStopped as exc:  # a signal or --time-limit: checkpointed, resumable
            click.echo(one_line(exc.for_cli()), err=True)
            sys.exit(exc.exit_code)
        except (click.Abort, KeyboardInterrupt):
            click.echo("Aborted.", err=True)
            sys.exit(130)
        code = rv if isinstance(rv, int) else 0
        if standalone_mode:
            sys.exit(code)
        return code


@click.group(cls=FsbenchGroup)
@click.version_option(package_name="fsbench", prog_name="fsbench")
def main() -> None:
    """Few-shot benchmark harness: train the published protocols, print tables beside the published numbers."""
    from fsbench.engine.device import allow_process_tuning

    configure_logging()
    allow_process_tuning()  # the command's own process: runs may tune malloc (a library may not)


from fsbench.commands.evaluate import eval_, predict  # noqa: E402
from fsbench.commands.listing import list_  # noqa: E402
from fsbench.commands.report import report  # noqa: E402
from fsbench.commands.reproduce import reproduce, what_ran  # noqa: E402, F401
from fsbench.commands.rerun import rerun  # noqa: E402
from fsbench.commands.run import pretrain, run  # noqa: E402
from fsbench.commands.table import plot, table  # noqa: E402

for _command in (run, pretrain, eval_, predict, reproduce, rerun, report, table, plot, list_):
    main.add_command(_command)


if __name__ == "__main__":  # pragma: no cover
    main()
