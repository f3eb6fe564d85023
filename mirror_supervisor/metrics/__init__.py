"""Prometheus metrics: the exposition built from what the master publishes, the textfile for
node_exporter, and the helper processes behind them (footage probe, coverage child, listener).

Never blocks the master's loop (docs/design.md, "Metrics and systemd" and "Package map").
"""
