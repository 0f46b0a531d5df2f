"""Coordination's Prometheus figures (listed in ``docs/metrics.rst``).

The coordinator updates them as things happen, from its heartbeat thread:
the members of each group it belongs to or watches (group names are the
daemons' own, a small fixed set), the gap between heartbeats and when the
last one succeeded, locks lost, reconnections.  They go to this process's
metrics (:func:`storaged.metrics.process`).
"""

from __future__ import annotations

from storaged import metrics as metrics_mod
from storaged.metrics import Metrics

#: heartbeat gaps: a heartbeat is every second or so; a stall is longer
GAP_BUCKETS = (0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 300.0)


def declare_metrics(metrics: Metrics) -> None:
    """Declare coordination's metrics."""
    metrics.gauge("coordination_connected", "1 while connected to the "
                  "coordination back end, else 0.", multiprocess_mode="max")
    metrics.gauge("coordination_group_members", "Members of a coordination "
                  "group in the last view of it.", ["group"],
                  multiprocess_mode="max")
    metrics.gauge("coordination_heartbeat_gap_seconds", "Seconds between the "
                  "starts of the last two heartbeats.", multiprocess_mode="max")
    metrics.histogram("coordination_heartbeat_gaps_seconds", "Seconds between "
                      "the starts of consecutive heartbeats.", buckets=GAP_BUCKETS)
    metrics.gauge("coordination_last_heartbeat_timestamp_seconds", "When the "
                  "last good heartbeat ended (Unix time).",
                  multiprocess_mode="max")
    metrics.counter("coordination_lock_losses", "Held locks reported lost "
                    "(not refreshed in time, the connection lost, the back "
                    "end no longer has them, the coordinator stopped).")
    metrics.counter("coordination_disconnects", "Connections to the back end lost.")
    metrics.counter("coordination_reconnects", "Connections to the back end "
                    "made again after one was lost or failed.")


def process() -> Metrics:
    """This process's metrics, with coordination's declared."""
    m = metrics_mod.process()
    if "coordination_connected" not in m:
        declare_metrics(m)
    return m
