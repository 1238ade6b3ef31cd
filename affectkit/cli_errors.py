"""How the command line reports problems: one ``error: ...`` line per failure, one ``warning: ...`` line per
warning, and exit codes (2: bad input or environment, 1: a bug, 130: interrupted); ``--debug`` shows tracebacks."""

from __future__ import annotations

import argparse
import contextlib
import io
import sys
import warnings
from collections.abc import Callable

from affectkit.extras import MissingExtraError

__all__ = ["USER_ERRORS", "parse_args", "run_verb"]

# Errors that mean bad input or a bad environment, not a bug: one line and exit code 2. (ConfigError is a
# ValueError; WeightsNotFoundError a FileNotFoundError; MissingExtraError names the pip extra to install.)
USER_ERRORS: tuple[type[Exception], ...] = (ValueError, KeyError, OSError, MissingExtraError)


def _one_line(text: str) -> str:
    """A message on one line (several lines are joined with '; ')."""
    return "; ".join(line.strip() for line in str(text).splitlines() if line.strip())


def _message(e: BaseException) -> str:
    # str(KeyError("x")) is "'x'": use the message itself
    text = e.args[0] if isinstance(e, KeyError) and len(e.args) == 1 else str(e)
    return _one_line(text) or type(e).__name__


def _format_warning(message, category, filename, lineno, line=None) -> str:
    """Warnings as one ``warning: ...`` line (the code location Python adds is noise for users)."""
    return f"warning: {_one_line(message)}\n"


def parse_args(parser: argparse.ArgumentParser, argv: list[str], debug: bool) -> argparse.Namespace | int:
    """Parsed arguments, or the exit code after a usage error (reported as one line unless ``debug``)."""
    if debug:
        return parser.parse_args(argv)
    buf = io.StringIO()
    try:
        with contextlib.redirect_stderr(buf):
            return parser.parse_args(argv)
    except SystemExit as e:
        lines = [line for line in buf.getvalue().splitlines() if line.strip()]
        if not e.code or not lines:  # --help, --version
            sys.stderr.write(buf.getvalue())
            return e.code if isinstance(e.code, int) else 0
        prog, _, msg = lines[-1].partition(": error: ")
        print(f"error: {msg or lines[-1]} ({prog}): see {prog} --help", file=sys.stderr)
        return 2


def run_verb(fn: Callable[[argparse.Namespace], object], args: argparse.Namespace, debug: bool) -> int:
    """Run one verb's function; the exit code, with any error reported as one line (``debug``: re-raised)."""
    fmt = warnings.formatwarning
    if not debug:
        warnings.formatwarning = _format_warning
    try:
        fn(args)
    except KeyboardInterrupt:
        if debug:
            raise
        print(f"error: interrupted (affectkit {args.verb}): stopped by the user", file=sys.stderr)
        return 130
    except USER_ERRORS as e:
        if debug:
            raise
        print(f"error: {_message(e)}", file=sys.stderr)
        return 2
    except Exception as e:
        if debug:
            raise
        print(
            f"error: internal error, a bug in affectkit ({type(e).__name__}: {_message(e)}): please report it; "
            f"rerun with --debug (or AFFECTKIT_DEBUG=1) for the traceback",
            file=sys.stderr,
        )
        return 1
    finally:
        warnings.formatwarning = fmt
    return 0
