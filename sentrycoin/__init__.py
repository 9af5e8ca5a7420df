"""SentryCoin: flash-crash early warning for crypto markets (application layer)."""

__version__ = "0.1.0"
