"""The uploads the receiver should accept, shared through the Django cache.

The capture task registers an ``Expectation`` before it triggers the modem; the TFTP
receiver (another process) matches write requests against it. Entries expire with the
capture's deadline, so nothing outlives an operation, and no process keeps them in memory.
"""

from __future__ import annotations

import logging

from django.core.cache import cache
from django.db import close_old_connections
from django.utils import timezone

from captures import services
from captures.models import Capture, CaptureState
from core.rows import row_keys
from devices.links.pnm import normalize_mac
from devices.links.tftp import Expectation, lookup_key
from devices.models import CableModem

log = logging.getLogger(__name__)

PREFIX = "pnm:expect:"
EXPIRY_SLACK_S = 60


def _cache_key(lookup: str) -> str:
    return PREFIX + lookup


def register(capture: Capture, modem: CableModem) -> Expectation:
    """Expect ``capture.file_name`` (or the MIB default name of its file) from the modem's
    address."""
    expectation = Expectation(
        file_name=capture.file_name,
        peer_ip=modem.ip_address,
        mac=normalize_mac(modem.mac_address),
        test=capture.test,
        expires_at=capture.deadline.timestamp(),
        context={"capture": capture.pk, "operation": capture.operation_id},
    )
    ttl = max(1, int(capture.deadline.timestamp() - timezone.now().timestamp())) + EXPIRY_SLACK_S
    by_name, *shared = expectation.lookup_keys()
    entry = expectation.to_dict()
    entries = {_cache_key(by_name): [entry]}  # names are unique
    # The MIB default name: other captures of the modem may be there. One read of those
    # lists and one pipelined write of every key.
    keys = [_cache_key(lookup) for lookup in shared]
    kept = cache.get_many(keys) if keys else {}
    for key in keys:
        live = [old for old in kept.get(key) or [] if not Expectation.from_dict(old).expired()]
        entries[key] = [*live, entry]
    cache.set_many(entries, timeout=ttl)
    return expectation


def forget(expectation: Expectation) -> None:
    """Stop accepting an upload under its own name (finished, failed, or its trigger
    failed). Its entry under the MIB default name stays until it expires: ``match`` skips
    it once its capture no longer waits, and rewriting that list here (the receiver, in
    another process) could drop an entry a trigger adds at the same moment."""
    by_name, *_shared = expectation.lookup_keys()
    cache.delete(_cache_key(by_name))


class CacheExpectationStore:
    """``devices.links.tftp.ExpectationStore`` over the Django cache, for the receiver."""

    def match(self, file_name: str, peer_ip: str) -> Expectation | None:
        """The oldest live expectation whose capture still waits for its file (the row
        decides: a stopped operation's captures are cancelled, their uploads refused)."""
        close_old_connections()  # the receiver's threads live long: drop a broken connection
        live = [
            expectation
            for expectation in map(
                Expectation.from_dict, cache.get(_cache_key(lookup_key(file_name, peer_ip))) or []
            )
            if not expectation.expired()
        ]
        if not live:
            return None
        candidates = [expectation.context["capture"] for expectation in live]
        waiting = set(row_keys(Capture, {"id": candidates, "state": CaptureState.PENDING}))
        return next((exp for exp in live if exp.context["capture"] in waiting), None)

    def finished(self, expectation: Expectation) -> None:
        forget(expectation)

    def failed(self, expectation: Expectation, reason: str) -> None:
        forget(expectation)
        services.fail_capture(
            expectation.context["capture"],
            f"upload of {expectation.file_name} failed: {reason}",
            "UploadFailed",
        )
