"""Prometheus metrics (architecture §4.7): the `metrics` service."""
