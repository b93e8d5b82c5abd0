"""`titans backup DEST` and `titans restore ARCHIVE`: one archive holding the warehouse and MLflow
databases (pg_dump), the MLflow artifacts and Dagster's home, with a manifest of versions and
checksums (lib/backup.py holds the layout and the rules; this module only wires them to the CLI)."""

from __future__ import annotations

from pathlib import Path

import click


@click.command("backup")
@click.argument("dest", type=click.Path(path_type=Path))
def backup(dest: Path) -> None:
    """Write one archive of everything at DEST (a new file, or a directory for a dated file)."""
    from titans_assets.lib.backup import Summary, write_backup
    from titans_assets.lib.db import get_database
    from titans_assets.lib.settings import Settings

    settings = Settings.from_env()
    db = get_database(settings)
    db.ping()
    click.echo(f"database: {db.redacted()}")
    path, manifest = write_backup(settings, db, dest)
    s = Summary.of(manifest)
    click.echo(f"backup written to {path}")
    click.echo(
        f"  {s.files} files ({s.bytes / 1e6:.1f} MB before compression), {s.tables} tables, {s.rows} rows; "
        f"created {manifest['created_at']}"
    )
    click.echo("  restore with: titans restore " + str(path))


@click.command("restore")
@click.argument("archive", type=click.Path(path_type=Path))
@click.option("--force", is_flag=True, help="Replace what a non-empty TITANS_HOME (or database) holds.")
def restore(archive: Path, force: bool) -> None:
    """Rebuild TITANS_HOME (and its database) from a `titans backup` archive, checksums verified first."""
    from titans_assets.lib.backup import Summary, restore_backup
    from titans_assets.lib.settings import Settings

    settings = Settings.from_env()
    manifest = restore_backup(settings, archive, force=force)
    s = Summary.of(manifest)
    click.echo(
        f"restored {archive} (created {manifest['created_at']}, titans {manifest['versions'].get('titans')}) "
        f"into {settings.home}"
    )
    click.echo(f"  {s.files} files verified; {s.tables} tables, {s.rows} rows, identical to the backup's")
