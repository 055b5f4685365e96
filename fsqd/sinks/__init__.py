"""Where codes go: one ``Sink`` interface (``base``); JSON lines (``jsonl``), MQTT
(``mqtt/``, its durable queue in ``spool/``, its settings in ``fsqd.config.mqtt``), Home
Assistant discovery (``homeassistant``) and the message bodies (``payload``,
``batchlines``)."""

from fsqd.sinks.base import PublishedCallback, Sink

__all__ = ["PublishedCallback", "Sink"]
