"""`titans profile suggest FILE`: a draft CSV profile for a bank export (lib/formats/profiles.suggest).

Thin click wrapper (registered on the `titans` group by the CLI)."""

from __future__ import annotations

from pathlib import Path

import click


@click.group("profile")
def profile() -> None:
    """CSV profiles: how a bank's CSV layout maps to transactions."""


@profile.command("suggest")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--lines",
    type=click.IntRange(min=2),
    default=1000,
    show_default=True,
    help="How many lines of the file to sample.",
)
def suggest(file: Path, lines: int) -> None:
    """Print a draft YAML profile for FILE (save it as FILE.profile.yaml beside it, or in the profiles folder)."""
    from titans_assets.lib.formats.profiles import suggest as draft

    click.echo(draft(file.read_bytes(), file.name, lines), nl=False)
