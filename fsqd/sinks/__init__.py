"""Where codes go: JSON lines (MQTT and the spool later)."""
