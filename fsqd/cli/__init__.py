"""The ``fsqd`` command line: ``parser`` (arguments -> a command's options), ``main``
(errors -> exit codes), ``rendering`` (reports), ``model`` (the model package tools)."""

from fsqd.cli.main import main

__all__ = ["main"]
