"""Entry point of the ``recsys`` command: the group, logging, and the one-line error contract.

Any :class:`recsys.errors.RecsysError` (bad input, bad option, corrupt artifact) is printed as
``Error: <message>`` on stderr with exit code 2 and no traceback.
"""

from __future__ import annotations

import _thread
import logging
import signal
import sys
import threading

import click

from recsys import __version__
from recsys.errors import RecsysError


class _Interrupts:
    """Ctrl-C noted when it arrives, so that it is recognised whatever it becomes on its way up.

    A KeyboardInterrupt raised while a module is being imported can reach us wrapped in another
    exception (Python 3.11 wraps errors raised in ``__set_name__`` in a RuntimeError), so the
    exit code is decided by whether SIGINT came, not by the exception's type.

    One raised inside a finalizer (a ``__del__``, a weakref callback, the garbage collector) is
    swallowed by Python, which hands it to :func:`sys.unraisablehook` and carries on: the build
    would run on as if Ctrl-C had never come. Our hook delivers SIGINT again instead, so that it
    lands in the code the finalizer interrupted.
    """

    def __init__(self) -> None:
        self.seen = False
        self._again: threading.Timer | None = None

    def __call__(self, signum, frame) -> None:
        self.seen = True
        raise KeyboardInterrupt

    def _unraisable(self, unraisable) -> None:
        if isinstance(unraisable.exc_value, KeyboardInterrupt):
            # from another thread, a moment later, so that the handler runs once this hook has
            # returned: called from here, Python would run it at once, inside the hook, and swallow
            # it again (should it land in another finalizer, this hook sends it once more)
            self._again = threading.Timer(0.05, _thread.interrupt_main, args=(signal.SIGINT,))
            self._again.daemon = True
            self._again.start()
        else:
            self._hook(unraisable)

    def __enter__(self) -> _Interrupts:
        self._installed = (threading.current_thread() is threading.main_thread()
                           and signal.getsignal(signal.SIGINT) is signal.default_int_handler)
        if self._installed:  # a host's own handler (a server, a notebook) is left alone
            signal.signal(signal.SIGINT, self)
            self._hook, sys.unraisablehook = sys.unraisablehook, self._unraisable
        return self

    def __exit__(self, *exc) -> None:
        if self._again is not None:  # the command ended before the interrupt came again
            self._again.cancel()
        if self._installed:
            signal.signal(signal.SIGINT, signal.default_int_handler)
            sys.unraisablehook = self._hook


class RecsysGroup(click.Group):
    def invoke(self, ctx: click.Context):
        with _Interrupts() as interrupts:
            try:
                return super().invoke(ctx)
            except KeyboardInterrupt:  # Ctrl-C: the shell's convention, 128 + SIGINT; nothing half-written stays
                _interrupted(ctx)
            except Exception as e:
                if interrupts.seen:  # whatever the interrupt became on its way up
                    _interrupted(ctx)
                if isinstance(e, RecsysError):
                    click.echo(f"Error: {one_line(str(e))}", err=True)
                    ctx.exit(2)
                if out_of_memory(e):  # nothing half-written stays either; the traceback is logged with -vv
                    logging.getLogger("recsys").debug("out of memory", exc_info=True)
                    first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
                    click.echo(f"Error: out of memory ({one_line(first)[:300]}); lower the sizes (--batch-size, --dim, "
                               "--max-len, -k) or free memory", err=True)
                    ctx.exit(1)
                raise


def out_of_memory(e: BaseException) -> bool:
    """Whether ``e`` says memory ran out: Python's MemoryError, torch's OutOfMemoryError (CUDA), or
    the CPU allocator's "can't allocate memory".

    >>> out_of_memory(RuntimeError("DefaultCPUAllocator: can't allocate memory: you tried to allocate 512 GB"))
    True
    >>> out_of_memory(RuntimeError("a bug"))
    False
    """
    return (isinstance(e, MemoryError) or type(e).__name__ == "OutOfMemoryError"
            or "can't allocate memory" in str(e) or "CUDA out of memory" in str(e))


def one_line(message: str) -> str:
    """``message`` with every character that is not printable (a line break, a control character
    from a file's header) written as its escape, so that an error stays one line.

    >>> one_line("events.csv: missing column 'user_id' (found: a\\x1eb\\nc)")
    "events.csv: missing column 'user_id' (found: a\\\\x1eb\\\\nc)"
    """
    return "".join(c if c.isprintable() else ascii(c)[1:-1] for c in message)


def _interrupted(ctx: click.Context) -> None:
    # An interrupt that landed inside code run from a string (dataclasses builds its methods with
    # exec) leaves CPython's "unhandled KeyboardInterrupt" flag set even though it was handled
    # here, and the interpreter would then end by killing itself with SIGINT (-2) instead of
    # exiting 130. Running a string resets that flag.
    exec("")  # noqa: S102
    click.echo("Interrupted", err=True)
    ctx.exit(130)


@click.group(cls=RecsysGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="recsys")
@click.option("-v", "--verbose", count=True, help="More log output (-vv for debug).")
def cli(verbose: int) -> None:
    """recsys: mine users' latent needs from their events and recommend.

    Events + catalog -> clean -> two-tower retrieval (FAISS) + ALS candidates -> cross-encoder
    rerank. Start with `recsys data validate --dataset default`.
    """
    level = logging.WARNING if verbose == 0 else logging.INFO if verbose == 1 else logging.DEBUG
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)


def _register() -> None:
    from recsys.cli.build import build_index
    from recsys.cli.data import data
    from recsys.cli.evaluate import evaluate
    from recsys.cli.info import info
    from recsys.cli.items import add_items
    from recsys.cli.needs import needs
    from recsys.cli.query import query, recommend
    from recsys.cli.rerank import train_reranker
    from recsys.cli.serve import forget, serve

    cli.add_command(data)
    cli.add_command(build_index)
    cli.add_command(query)
    cli.add_command(recommend)
    cli.add_command(evaluate)
    cli.add_command(train_reranker)
    cli.add_command(add_items)
    cli.add_command(needs)
    cli.add_command(serve)
    cli.add_command(forget)
    cli.add_command(info)


_register()


def main() -> None:
    cli(prog_name="recsys")


if __name__ == "__main__":
    main()
