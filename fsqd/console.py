"""Human-facing remarks on stderr (not errors: those go through the CLI's error mapping)."""

from __future__ import annotations

import sys


def note(message: str) -> None:
    """A human-facing remark on stderr that is not an error."""
    print(f"fsqd: {message}", file=sys.stderr)
