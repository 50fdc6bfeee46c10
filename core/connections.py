"""Database connections around slow device I/O."""

from __future__ import annotations

from django.db import close_old_connections, connection


def hand_back() -> None:
    """Return this thread's pooled connection before device I/O (an SNMP exchange, a wait
    for a file): a silent modem keeps a trigger waiting its full timeout x retries, and a
    connection held through that leaves a threads worker's other threads waiting for the
    pool (4 connections for 32 threads). The next query takes one again.

    Kept inside a transaction (the work needs it) and without a pool (closing would only
    cost a new server connection per step).
    """
    if connection.in_atomic_block or "pool" not in connection.settings_dict["OPTIONS"]:
        return
    close_old_connections()
