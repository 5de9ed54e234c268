"""The gateway's long-running services: poller, uplink and control."""
