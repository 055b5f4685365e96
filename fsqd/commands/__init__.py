"""One module per ``fsqd`` command: a function that takes a frozen options dataclass and
returns an exit code, callable as a library (the argument parsing is ``fsqd.cli``'s)."""
