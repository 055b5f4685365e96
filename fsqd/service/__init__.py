"""Wiring of the long-running daemon (systemd, logging)."""
