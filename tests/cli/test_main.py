"""The entry point's exit codes: 2 for a RecsysError, 130 for Ctrl-C however it arrives."""

from __future__ import annotations

import signal
import sys
import time

import click
from click.testing import CliRunner

from recsys.cli.main import RecsysGroup
from recsys.errors import DataError


def _group() -> click.Group:
    @click.group(cls=RecsysGroup)
    def g() -> None:
        pass

    @g.command()
    def wrapped() -> None:  # what Python 3.11 does to an interrupt inside a class body's __set_name__
        try:
            signal.raise_signal(signal.SIGINT)
        except KeyboardInterrupt as e:
            raise RuntimeError("Error calling __set_name__ on 'Field' instance") from e

    @g.command()
    def finalizer() -> None:  # Ctrl-C while an object is being collected: Python swallows it there
        class Handle:
            def __del__(self) -> None:
                signal.raise_signal(signal.SIGINT)

        Handle()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:  # the work that follows, which the interrupt must stop
            time.sleep(0.01)
        click.echo("ran on")

    @g.command()
    def bad() -> None:
        raise DataError("events.csv row 3: no user_id; fill it or drop the row")

    @g.command()
    def huge() -> None:  # what torch's CPU allocator raises for a tensor beyond the machine
        raise RuntimeError("[enforce fail at alloc_cpu.cpp:127] DefaultCPUAllocator: can't allocate memory: you tried "
                           "to allocate 512000000000 bytes.\nmore detail")

    @g.command()
    def crash() -> None:
        raise RuntimeError("a bug")

    return g


def test_an_interrupt_wrapped_in_another_exception_still_exits_130():
    # Python's own handler, as in a shell: a process started in a script's background ignores SIGINT
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        result = CliRunner().invoke(_group(), ["wrapped"])
        assert (result.exit_code, result.output) == (130, "Interrupted\n")
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # the handler is put back
    finally:
        signal.signal(signal.SIGINT, previous)


def test_an_interrupt_swallowed_by_a_finalizer_still_stops_the_command():
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    hook = sys.unraisablehook
    try:
        result = CliRunner().invoke(_group(), ["finalizer"])
        # not "ran on", and not Python's "Exception ignored in: ... KeyboardInterrupt" either
        assert (result.exit_code, result.output) == (130, "Interrupted\n")
        assert sys.unraisablehook is hook  # the hook is put back
    finally:
        signal.signal(signal.SIGINT, previous)


def test_a_recsys_error_is_one_line_and_exit_2_out_of_memory_one_line_and_a_bug_still_raises():
    result = CliRunner().invoke(_group(), ["bad"])
    assert (result.exit_code, result.output) == (2, "Error: events.csv row 3: no user_id; fill it or drop the row\n")
    result = CliRunner().invoke(_group(), ["huge"])
    assert (result.exit_code, result.output) == (1, "Error: out of memory ([enforce fail at alloc_cpu.cpp:127] "
                                                 "DefaultCPUAllocator: can't allocate memory: you tried to allocate "
                                                 "512000000000 bytes.); lower the sizes (--batch-size, --dim, --max-len, "
                                                 "-k) or free memory\n")
    result = CliRunner().invoke(_group(), ["crash"])
    assert result.exit_code == 1 and isinstance(result.exception, RuntimeError)
