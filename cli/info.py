"""``uda info``: versions and machine facts (the same facts every results file records)."""

from __future__ import annotations

import json

import click


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def info(as_json: bool) -> None:
    """Print uda's version, package versions and machine facts."""
    from uda import __version__
    from uda.harness.results import PACKAGES, git_facts, machine_facts
    from uda.versions import package_versions

    facts = {"uda": __version__, "machine": machine_facts(), "packages": package_versions(PACKAGES),
             "git": git_facts()}
    if as_json:
        click.echo(json.dumps(facts))
        return
    from rich.markup import escape
    from rich.table import Table

    from uda.cli.output import wide_console

    tab = Table(title=f"uda {__version__}", show_header=False)
    tab.add_column("fact")
    tab.add_column("value")
    for key, value in facts["machine"].items():
        if key == "memory_bytes":
            key, value = "memory", f"{value / 2**30:.1f} GiB"
        tab.add_row(key, escape(str(value)))
    tab.add_row("git commit", escape(f"{facts['git']['commit']}{' (dirty)' if facts['git']['dirty'] else ''}"))
    for name, version in facts["packages"].items():
        tab.add_row(name, escape(str(version or "not installed")))
    wide_console().print(tab)
