"""Signals other apps listen to without captures importing them (apps depend downward)."""

from django.dispatch import Signal

# Sent inside the transaction that gives operations their terminal state, with their rows
# locked and refreshed: ``operations`` (a list, often of one; staging ends the operations
# of the files it stored together). Receivers write in that transaction.
operations_finished = Signal()
