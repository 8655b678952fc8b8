"""``recsys info``: the versions, machine, device and thread settings this machine runs recsys with."""

from __future__ import annotations

import json

import click

from recsys.cli.options import THREADS


@click.command("info")
@THREADS
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def info(threads: int | None, as_json: bool) -> None:
    """Package versions, the machine (CPU model, vector instructions), the device, and each thread
    pool's size (torch, BLAS, faiss, polars)."""
    from recsys.artifacts import machine_info, package_versions
    from recsys.device import resolve_device
    from recsys.threads import configure, report

    configure(threads)
    out = {"packages": package_versions(), "machine": machine_info(), "device": resolve_device(None),
           "threads": report()}
    if as_json:
        click.echo(json.dumps(out))
        return
    for key, value in out.items():
        click.echo(f"{key}: {value}")
