"""Link errors, one class per way a seismograph link fails.

Callers (Celery tasks, the API) need two facts from a failure: *what kind* it was, so
"refused" and "timeout" can be shown differently, and *whether retrying can help*. Both are
plain class attributes, so ``except SeismoLinkError as exc: exc.kind, exc.transient``.
"""

from __future__ import annotations


class SeismoLinkError(Exception):
    """Base of every link failure. ``kind`` names it for reports, ``transient`` says
    whether the same call may succeed if retried later."""

    kind: str = "error"
    transient: bool = True


class LinkRefused(SeismoLinkError):
    """The link could not be opened: TCP connection refused/reset before any reply, or a
    serial port that is missing or held by another session. Transient (a busy unit frees
    its line), but a unit that keeps refusing is wedged: count failures, don't hammer it."""

    kind = "refused"


class LinkTimeout(SeismoLinkError):
    """The peer stayed silent: no complete reply before the command's deadline."""

    kind = "timeout"


class LinkDropped(SeismoLinkError):
    """The connection was lost in the middle of a transfer (EOF, I/O error, modem
    ``NO CARRIER``). Nothing read in that command is returned."""

    kind = "dropped"


class ChecksumError(SeismoLinkError):
    """A complete frame arrived whose 8-bit sum does not match: line noise, retry."""

    kind = "checksum"


class ProtocolError(SeismoLinkError):
    """The peer answered with bytes we cannot interpret (bad terminator, wrong reply SUB,
    wrong length, malformed record). Retrying the same exchange will not help."""

    kind = "protocol"
    transient = False


class CommandRejected(SeismoLinkError):
    """The unit understood the command and refused it (e.g. an invalid config value)."""

    kind = "rejected"
    transient = False


class NoSuchEvent(SeismoLinkError, LookupError):
    """The requested event index is not on the unit (the walk ended before it)."""

    kind = "no_such_event"
    transient = False
