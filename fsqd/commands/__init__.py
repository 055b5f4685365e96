"""What ``fsqd`` subcommands do, one module a command; ``fsqd.cli`` parses and dispatches."""

__all__: list[str] = []
