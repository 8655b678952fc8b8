"""The ``recsys`` command's entry point (also ``python -m recsys`` and torchrun's ranks).

Thread settings that libraries read when they load (OpenMP's wait policy, polars' pool) are set
first, then the command line is imported: importing it loads torch, which must see them
(:mod:`recsys.threads`).
"""

from __future__ import annotations

from recsys.threads import prepare_process


def main() -> None:
    prepare_process()
    # imported after prepare_process, on purpose: torch loads with its settings
    from recsys.cli.main import main as run

    run()
