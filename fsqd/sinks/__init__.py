"""Where codes go: one Sink interface (base.py); JSON lines, MQTT and its spool."""
