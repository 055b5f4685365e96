"""The MQTT sink: codes, stats and info to a broker, through a durable spool when it is away.

``sink`` (``MqttSink``: connections, retained topics, discovery), ``codes`` (ids, the memory
backlog, the in-flight window, spooling), ``connection`` (one ``aiomqtt.Client`` per
connection), ``tls`` (each connection's TLS context). The ``[mqtt]`` table is parsed in
``fsqd.config.mqtt``; its names are re-exported here for the callers that read both.
"""

from fsqd.config.mqtt import MqttSettings, Secret, default_node_id, parse_mqtt, tls_context
from fsqd.sinks.mqtt.sink import Discovery, MqttSink

__all__ = [
    "Discovery",
    "MqttSettings",
    "MqttSink",
    "Secret",
    "default_node_id",
    "parse_mqtt",
    "tls_context",
]
