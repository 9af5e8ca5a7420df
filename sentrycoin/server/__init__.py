"""HTTP surface of SentryCoin: status, health, alerts, metrics and the live dashboard."""

from sentrycoin.server.app import bound_port, create_app, start_server
from sentrycoin.server.metrics import ProcessingTimeHistogram
from sentrycoin.server.protocols import MonitorLike

__all__ = ["MonitorLike", "ProcessingTimeHistogram", "bound_port", "create_app", "start_server"]
