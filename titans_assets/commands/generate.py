"""`titans generate` and `titans generate-report`: synthetic exports and a statistical look at them.

Thin click wrappers around `titans_assets.lib.generator` (registered on the `titans` group by the CLI).
"""

from __future__ import annotations

import json
from pathlib import Path

import click

from titans_assets.lib import generator as gen
from titans_assets.lib.settings import Settings


def _accounts(_ctx: click.Context, _param: click.Parameter, value: str) -> tuple[str, ...]:
    names = tuple(a.strip() for a in value.split(",") if a.strip())
    unknown = [a for a in names if a not in gen.ACCOUNTS]
    if not names or unknown:
        raise click.BadParameter(
            f"accounts {', '.join(unknown) or '(none)'}; known: {', '.join(gen.ACCOUNTS)}"
        )
    return names


@click.command("generate")
@click.option(
    "--out",
    "out",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Landing folder for the CSV exports (default: $TITANS_LANDING_DIR or data/raw).",
)
@click.option(
    "--rows",
    type=click.IntRange(min=1),
    default=None,
    help="Total data rows across all files (exact). Excludes --years.",
)
@click.option(
    "--years",
    type=click.FloatRange(min=0, min_open=True, max=gen._MAX_YEARS),
    default=None,
    help="Span in years at the base volume (default 2). Excludes --rows.",
)
@click.option(
    "--accounts",
    default=",".join(gen.DEFAULT_ACCOUNTS),
    show_default=True,
    callback=_accounts,
    help=f"Comma-separated accounts, one file each; known: {', '.join(gen.ACCOUNTS)}.",
)
@click.option("--seed", type=int, default=42, show_default=True)
@click.option(
    "--anomaly-rate",
    type=click.FloatRange(0, 0.2),
    default=0.01,
    show_default=True,
    help="Share of rows that are injected anomalies (labelled in the ground truth only).",
)
@click.option(
    "--messy-rate",
    type=click.FloatRange(0, 0.5),
    default=0.01,
    show_default=True,
    help="Share of rows with messy formatting; ~10% of those are invalid (quarantined by the loader).",
)
@click.option(
    "--label-noise",
    type=click.FloatRange(0, 0.5),
    default=0.02,
    show_default=True,
    help="Share of expense rows whose category is replaced by a near-duplicate.",
)
@click.option(
    "--end-date",
    type=click.DateTime(formats=["%Y-%m-%d"]),
    default=None,
    help="Last date of the data, YYYY-MM-DD (default: today).",
)
@click.option(
    "--labels-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Where the ground truth goes (default: <out>/../labels); must be outside --out.",
)
@click.option(
    "--file-quirks/--no-file-quirks",
    default=None,
    help="Header/CRLF/trailing-newline quirks (default: on when --messy-rate > 0).",
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(gen.FORMATS),
    default="csv",
    show_default=True,
    help="File format: the seed CSV, a bank statement (OFX 1.02, CAMT.053, MT940, QIF) per account, "
    "or a CSV in a built-in profile's layout (csv-profile:<name>), "
    "with bank transaction ids and balances where the format has them.",
)
def generate(
    out,
    rows,
    years,
    accounts,
    seed,
    anomaly_rate,
    messy_rate,
    label_noise,
    end_date,
    labels_dir,
    file_quirks,
    fmt,
) -> None:
    """Write realistic synthetic bank exports, one file per account.

    CSV files are newest-first with messy rows; statements are oldest-first, as banks write them.
    The ground truth (anomalies, label noise, invalid rows) is written outside the landing folder.
    """
    if rows is not None and years is not None:
        raise click.UsageError("--rows and --years are mutually exclusive")
    out = out if out is not None else Settings.from_env().landing_dir
    try:
        summary = gen.generate(
            out,
            rows=rows,
            years=years,
            accounts=accounts,
            seed=seed,
            anomaly_rate=anomaly_rate,
            messy_rate=messy_rate,
            label_noise=label_noise,
            end_date=end_date.date() if end_date else None,
            labels_dir=labels_dir,
            file_quirks=file_quirks,
            format=fmt,
        )
    except ValueError as exc:
        raise click.UsageError(f"{exc}") from exc
    click.echo(summary.format())


@click.command("generate-report")
@click.option(
    "--dir",
    "directory",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Folder of CSV exports (default: $TITANS_LANDING_DIR or data/raw).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
def generate_report(directory, as_json) -> None:
    """Category shares, amount quantiles, recurring intervals, weekday and month shares of the exports."""
    directory = directory if directory is not None else Settings.from_env().landing_dir
    try:
        rep = gen.report(directory)
    except FileNotFoundError as exc:
        raise click.UsageError(f"--dir: {exc}") from exc
    click.echo(json.dumps(rep, indent=2) if as_json else gen.format_report(rep))
