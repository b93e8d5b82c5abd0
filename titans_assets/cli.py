"""`titans`: the command line, assembled from titans_assets/commands/ (one module per command or small
group). Every failure ends as one readable line with its code, never a traceback
(set TITANS_DEBUG=1 to see one)."""

from __future__ import annotations

import os
import signal
import sys

import click

from titans_assets.commands.account import account
from titans_assets.commands.backup import backup, restore
from titans_assets.commands.dashboard import dashboard
from titans_assets.commands.generate import generate, generate_report
from titans_assets.commands.metrics import metrics
from titans_assets.commands.profile import profile
from titans_assets.commands.rules import rules
from titans_assets.commands.run import demo, materialize
from titans_assets.commands.serve import serve
from titans_assets.commands.status import status
from titans_assets.commands.tools import dagster, docs, mlflow
from titans_assets.commands.up import up


class _Group(click.Group):
    """Ends every failure in one line `error: E00x what happened -> next: what to do` (lib/errors.py);
    usage errors exit with 2, the rest with 1; TITANS_DEBUG=1 shows the traceback instead."""

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra):
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        from titans_assets.lib import errors

        debug = bool(os.environ.get("TITANS_DEBUG"))
        try:
            rv = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        except click.exceptions.Abort:
            click.echo("interrupted", err=True)
            sys.exit(130)
        except click.exceptions.NoArgsIsHelpError as exc:  # bare `titans`: the help, as click shows it
            exc.show()
            sys.exit(exc.exit_code)
        except click.UsageError as exc:
            if debug:
                raise
            command = exc.ctx.command_path if exc.ctx else (prog_name or "titans")
            _fail(errors.usage_failure(exc.format_message(), command), 2)
        except click.ClickException as exc:
            if debug:
                raise
            _fail(errors.from_text(type(exc).__name__, exc.format_message()), exc.exit_code or 1)
        except Exception as exc:  # noqa: BLE001 - the one place that turns failures into a line
            if debug:
                raise
            _fail(errors.from_exception(exc), 1)
        sys.exit(rv if isinstance(rv, int) else 0)


def _fail(failure, exit_code: int) -> None:
    click.echo(f"error: {failure.line()}", err=True)
    sys.exit(exit_code)


@click.group(cls=_Group)
def main() -> None:
    """Titans Finance: bank and ledger CSV exports -> PostgreSQL -> dbt marts -> checked data."""
    # A terminated CLI still runs its exit handlers, which release the embedded PostgreSQL.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))


for command in (
    demo,
    materialize,
    status,
    generate,
    generate_report,
    profile,
    serve,
    dashboard,
    up,
    docs,
    mlflow,
    dagster,
    backup,
    restore,
):
    main.add_command(command)
main.add_command(metrics)
main.add_command(account)
main.add_command(rules)


if __name__ == "__main__":
    main()
