"""The uplink: durable queue and delivery to the HTTP API (issue 4)."""
