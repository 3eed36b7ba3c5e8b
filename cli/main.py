"""Entry point of the ``uda`` command."""

from __future__ import annotations

import os
import sys

import click

from uda import __version__
from uda.cli.lazy import LazyGroup
from uda.errors import UserError

COMMANDS = {
    "generate": "uda.cli.generate:generate",
    "verify": "uda.cli.verify:verify",
    "info": "uda.cli.info:info",
    "run": "uda.cli.run:run",
    "bench": "uda.cli.bench:bench",
    "report": "uda.cli.report:report",
    "compare": "uda.cli.compare:compare",
    "size": "uda.cli.size:size",
    "regress": "uda.cli.regress:regress",
    "realism": "uda.cli.realism:realism",
}


class _Root(LazyGroup):
    def invoke(self, ctx: click.Context):
        store = sys.modules.get("uda.store")  # not imported yet in a fresh process
        if store is not None:
            store.OPENED.clear()  # only datasets this command opened can explain its errors
        try:
            return super().invoke(ctx)
        except UserError as exc:
            click.echo(f"Error: {exc}", err=True)
            ctx.exit(exc.exit_code)
        except (click.exceptions.Exit, click.ClickException, click.Abort):
            raise
        except BrokenPipeError:
            # the reader went away (``uda ... | head``): stop quietly with status 1, as rich
            # does for its tables, and keep Python from complaining when it flushes stdout
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            ctx.exit(1)
        except Exception as exc:
            # a damaged dataset file surfaces as an engine error that does not name it
            from uda.store import diagnose_read_error

            err = diagnose_read_error(exc)
            if err is not None:
                click.echo(f"Error: {err}", err=True)
                ctx.exit(err.exit_code)
            if os.environ.get("UDA_DEBUG"):
                raise
            # anything else is a bug in uda (bad input must be a UserError): one line, exit 1
            text = (str(exc).strip().splitlines() or [""])[0][:200]
            click.echo(f"Error: internal error ({exc.__class__.__name__}: {text}); this is a bug in uda, "
                       "please report it with the command you ran (set UDA_DEBUG=1 to see the traceback)",
                       err=True)
            ctx.exit(1)


@click.group(cls=_Root, lazy=COMMANDS, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="uda")
def cli() -> None:
    """uda: benchmark urban big-data analytics on a seeded synthetic city.

    Generate a city and its sensor data, run route, flow, utilisation and water
    analytics on Polars and Dask, and measure speed, memory and answer quality.
    """


def main() -> None:
    """Run the ``uda`` command line."""
    sys.exit(cli.main(prog_name="uda"))


if __name__ == "__main__":
    main()
