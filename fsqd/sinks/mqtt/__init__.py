"""The MQTT sink: codes, stats and info to a broker, through a durable spool when it is away.

``sink`` (``MqttSink``: connections, retained topics, discovery), ``codes`` (ids, the memory
backlog, the in-flight window, spooling), ``connection`` (one ``aiomqtt.Client`` per
connection), ``tls`` (each connection's TLS context). The ``[mqtt]`` table is parsed in
``fsqd.sinks.mqttconfig``; its names are re-exported here for the callers that read both.
"""

from fsqd.sinks.mqtt.sink import Discovery, MqttSink
from fsqd.sinks.mqttconfig import MqttSettings, Secret, default_node_id, parse_mqtt, tls_context

__all__ = [
    "Discovery",
    "MqttSettings",
    "MqttSink",
    "Secret",
    "default_node_id",
    "parse_mqtt",
    "tls_context",
]
