"""The MQTT bridge (docs/mqtt.md)."""
