"""Venue protocol handlers (sans-I/O); see base.py for the contract."""
