"""``recsys data validate`` and ``recsys data stats``."""

from __future__ import annotations

import json

import click

from recsys.cleaning import CleaningReport
from recsys.cli.options import data_options, pop_data_options
from recsys.inputs import resolve_data
from recsys.prepare import NoEventSurvives, prepare, stats


def _prepare(kwargs):
    ds, cleaning, used = resolve_data(pop_data_options(kwargs))
    return prepare(ds, cleaning, holdout="none"), used


def _echo_rules(report: CleaningReport) -> None:
    """The cleaning table, an example row of each rule that removed rows, and the verdict."""
    click.echo(report.table())
    for rule in report.rules:
        if rule["removed"] and rule["examples"]:
            ex = rule["examples"][0]
            click.echo(f"  e.g. {rule['rule']}: row {ex['row']} user={ex['user_id']} item={ex['item_id']} "
                       f"event={ex['event']} time={ex['timestamp']}")
        if rule.get("flagged"):
            click.echo(f"  {rule['rule']} flagged (kept): {', '.join(map(str, rule['flagged'][:10]))}"
                       + (" ..." if len(rule["flagged"]) > 10 else ""))
    click.echo(report.verdict())


@click.group()
def data() -> None:
    """Check and describe input data."""


@data.command()
@data_options
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def validate(as_json: bool, **kwargs) -> None:
    """Validate events (and catalog) against the data contract and report the cleaning.

    With no data argument it validates the embedded default dataset.
    """
    try:
        prepared, used = _prepare(kwargs)
    except NoEventSurvives as e:  # the report says which rules removed everything; then the one-line error
        if as_json:
            click.echo(json.dumps({"rows_in": e.report.rows_in, "rows_kept": 0, "cleaning": e.report.rules,
                                   "verdict": e.report.verdict(), "ok": False}, indent=2, default=str))
        else:
            _echo_rules(e.report)
        raise
    report = prepared.report.to_dict()
    summary = {
        "dataset": prepared.dataset.name,
        "rows_in": report["rows_in"], "rows_kept": report["rows_out"],
        "users": len(prepared.users), "items": len(prepared.items),
        "id_only_items": prepared.id_only_items,
        "cleaning": report["rules"], "dropped_items": report["dropped_items"], "config": used,
        "verdict": prepared.report.verdict(), "ok": prepared.report.verdict().startswith("OK"),
    }
    if as_json:
        click.echo(json.dumps(summary, indent=2, default=str))
        return
    click.echo(f"dataset {summary['dataset']}: {summary['rows_in']} rows in, {summary['rows_kept']} kept; "
               f"{summary['users']} users, {summary['items']} items "
               f"({summary['id_only_items']} ID-only: in events, not in the catalog)")
    _echo_rules(prepared.report)


@data.command("stats")
@data_options
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def stats_cmd(as_json: bool, **kwargs) -> None:
    """Counts, time span, density and event mix of the cleaned data."""
    prepared, _ = _prepare(kwargs)
    s = stats(prepared)
    if as_json:
        click.echo(json.dumps(s, indent=2, default=str))
        return
    width = max(len(k) for k in s)
    for key, value in s.items():
        if isinstance(value, dict):
            value = ", ".join(f"{k} {v}" for k, v in value.items())
        click.echo(f"{key:<{width}}  {value}")
