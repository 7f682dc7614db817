"""The monitor: windowed statistics of the sealed stream, alerts on an alerts topic and
as Prometheus metrics. ``rules`` is the pure logic, ``probes`` the lag and archive
readers, ``app`` the faust-streaming shell (imported lazily: faust is heavy)."""

from sealtrail.monitor.rules import ALERT_NAMES, Alert, Monitor, Thresholds

__all__ = ["ALERT_NAMES", "Alert", "Monitor", "Thresholds"]
