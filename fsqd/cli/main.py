"""``fsqd``'s entry point: parse, run one command, map errors to exit codes.

Every command returns an exit code. Errors fsqd raises on purpose print one line and
exit with their sysexits code; so does a full, failing or read-only disk met where no
command worded it (exit 74); anything else is a bug and says so (``--debug`` or
FSQD_DEBUG=1 shows the traceback).
"""

from __future__ import annotations

import errno
import os
import sys
from collections.abc import Sequence

from fsqd.cli.parser import build_parser, invocation
from fsqd.errors import EX_IOERR, EX_SOFTWARE, EX_USAGE, FsqdError

__all__ = ["main"]

# The disk failed, not fsqd: a full SD card, a quota, a bad block, a card the kernel
# remounted read-only after errors. One line and exit 74, whichever write met it.
DISK_FAILURES = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EIO, errno.EROFS})


def _log_to_stderr() -> None:
    """The command line's one structlog setup: stdout is kept for results, and only
    warnings (a fall-back, a range problem) are shown, on stderr. ``fsqd run`` replaces
    it with the daemon's own (``fsqd.daemon.logging``)."""
    import logging

    import structlog

    structlog.configure(
        wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING),
        # Looked up per message, so a replaced sys.stderr (tests, redirections) is honoured.
        logger_factory=lambda *_: structlog.PrintLogger(sys.stderr),
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:
        # argparse exits 2 on bad usage; fsqd uses sysexits throughout (64 = usage).
        return EX_USAGE if e.code == 2 else int(e.code or 0)
    debug = args.debug or os.environ.get("FSQD_DEBUG") == "1"
    _log_to_stderr()
    try:
        code = invocation(args)()
    except FsqdError as e:
        print(f"fsqd: error: {e}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # The reader went away (e.g. `| head`): not an error; stop writing quietly.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except OSError as e:
        if e.errno not in DISK_FAILURES:
            return _internal_error(e, debug)
        where = f"{e.filename}: " if e.filename else ""
        print(f"fsqd: error: {where}{e.strerror or e}", file=sys.stderr)
        return EX_IOERR
    except Exception as e:
        return _internal_error(e, debug)
    if args.command == "replay" and argv is None:
        # Run as a program (console script, python -m fsqd), not called by code that goes
        # on: everything is written and closed; skip tearing down the interpreter
        # (onnxruntime, numpy, thousands of objects), which the user waits for.
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    return code


def _internal_error(e: Exception, debug: bool) -> int:
    """A bug: one line (the traceback with --debug)."""
    if debug:
        raise e
    print(
        f"fsqd: internal error: {type(e).__name__}: {e} (run with --debug for details)",
        file=sys.stderr,
    )
    return EX_SOFTWARE
