"""`titans status`: the database, files, tables, last materializations, checks and champions."""

from __future__ import annotations

import json

import click

CHECK_STATES = ("passed", "failed", "warning", "running", "skipped", "not run")


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def status(as_json: bool) -> None:
    """Database in use, row counts, files, last materializations and check results."""
    from titans_assets.status_report import collect_status

    report = collect_status()
    if as_json:
        click.echo(json.dumps(report, indent=2, default=str))
        return
    click.echo(f"database: {report['database']}")
    click.echo(f"landing:  {report['landing_dir']}")
    click.echo("tables:")
    for table, n in report["tables"].items():
        click.echo(f"  {table:<40} {'-' if n is None else n:>10}")
    click.echo("files:")
    for f in report["files"] or [{"source_file": "(none loaded yet)"}]:
        if "rows_read" in f:
            click.echo(
                f"  {f['source_file']:<40} read {f['rows_read']}, loaded {f['rows_loaded']}, "
                f"quarantined {f['rows_quarantined']} ({f['loaded_at']})"
            )
        else:
            click.echo(f"  {f['source_file']}")
    click.echo("last materializations:")
    for key, when in report["materializations"].items():
        click.echo(f"  {key:<40} {when or 'never'}")
    states = [c["status"] for c in report["checks"].values()]
    click.echo(f"checks: {len(states)} ({', '.join(f'{states.count(s)} {s}' for s in CHECK_STATES)})")
    skipped: dict[str, int] = {}
    for key, state in report["checks"].items():
        if state["status"] == "failed":
            click.echo(f"  {key:<60} failed: {state['message']}")
        elif state["status"] == "skipped":  # one line per cause, not one per check
            skipped[state["reason"]] = skipped.get(state["reason"], 0) + 1
        elif state["status"] != "passed":
            click.echo(f"  {key:<60} {state['status']}")
    for reason, n in skipped.items():
        click.echo(f"  {n} check{'s' if n > 1 else ''} skipped: {reason}")
    echo_models(report["models"])


def echo_models(models: dict[str, dict], indent: str = "") -> None:
    """One line per model: what serves (a trained model or a baseline, named) and the latest decision."""
    click.echo(f"{indent}models (registry alias champion):")
    for m in models.values():
        decision = f": {m['last_decision']}" if m.get("last_decision") else ""
        if m.get("champion") is None:
            click.echo(f"{indent}  {m['name']:<18} {m.get('error') or 'no champion yet'}{decision}")
        else:
            click.echo(
                f"{indent}  {m['name']:<18} v{m['champion']:<4} {m.get('model_kind', 'model'):<26} "
                f"{m['primary_metric']} {m['value']:.4f}{decision}"
            )
