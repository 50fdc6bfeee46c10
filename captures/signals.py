"""Signals other apps listen to without captures importing them (apps depend downward)."""

from django.dispatch import Signal

# Sent inside the transaction that gives an operation its terminal state, with the
# operation row locked and refreshed: ``operation``. Receivers write in that transaction.
operation_finished = Signal()
