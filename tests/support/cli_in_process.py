"""The command line called in this process, as `tests.docs.test_cli.cli` runs it
in a subprocess: the same argv and environment, and what the user would see
(stdout, stderr, exit code), without the interpreter's start-up.

What a subprocess shows is kept: an uncaught exception prints its traceback
on stderr and exits 1; a warning is printed on stderr, not raised; a log
record of WARNING or above, and whatever C code writes to the file
descriptors 1 and 2, reach the output too.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import subprocess
import sys
import tempfile
import traceback
import warnings
from collections.abc import Iterator

from langgraph_rollback.cli import main


def cli_in_process(
    *args: str, env: dict[str, str], stdin: str = ""
) -> subprocess.CompletedProcess[str]:
    """`langgraph-rollback *args` with `env` added to the environment."""
    out, err = io.StringIO(), io.StringIO()
    handler = logging.StreamHandler(err)  # what the last-resort handler prints
    handler.setLevel(logging.WARNING)
    root = logging.getLogger()
    with (
        _environ(env),
        _fd_output() as raw,
        contextlib.redirect_stdout(out),
        contextlib.redirect_stderr(err),
        warnings.catch_warnings(),
    ):
        warnings.simplefilter("default")
        sys.stdin, stdin_was = io.StringIO(stdin), sys.stdin
        root.addHandler(handler)
        try:
            code = main(list(args))
        except SystemExit as exit_:
            code = _exit_code(exit_)
        except BaseException:
            traceback.print_exc(file=err)
            code = 1
        finally:
            root.removeHandler(handler)
            sys.stdin = stdin_was
    stdout = out.getvalue() + raw[1].getvalue()
    stderr = err.getvalue() + raw[2].getvalue()
    return subprocess.CompletedProcess(
        ["langgraph-rollback", *args], code, stdout, stderr
    )


def _exit_code(exit_: SystemExit) -> int:
    if exit_.code is None:
        return 0
    if isinstance(exit_.code, int):
        return exit_.code
    print(exit_.code, file=sys.stderr)
    return 1


@contextlib.contextmanager
def _environ(env: dict[str, str]) -> Iterator[None]:
    saved = {name: os.environ.get(name) for name in env}
    os.environ.update(env)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


@contextlib.contextmanager
def _fd_output() -> Iterator[dict[int, io.StringIO]]:
    """What is written to the file descriptors 1 and 2 meanwhile (by C code),
    filled in when the block ends."""
    texts = {1: io.StringIO(), 2: io.StringIO()}
    with tempfile.TemporaryFile() as one, tempfile.TemporaryFile() as two:
        files = {1: one, 2: two}
        for stream in (sys.stdout, sys.stderr):
            stream.flush()
        saved = {fd: os.dup(fd) for fd in files}
        try:
            for fd, file in files.items():
                os.dup2(file.fileno(), fd)
            yield texts
        finally:
            for fd, copy in saved.items():
                os.dup2(copy, fd)
                os.close(copy)
            for fd, file in files.items():
                file.seek(0)
                texts[fd].write(file.read().decode(errors="replace"))
