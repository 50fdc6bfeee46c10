"""Beat's scheduler: django-celery-beat's DatabaseScheduler, with change checks throttled.

The stock scheduler asks the database whether any PeriodicTask changed (a commit and a
query) before every single task it sends. With one schedule per running PNM operation beat
sends tens of tasks a second, and that check was a third of its CPU and the latency that
kept it from sending on time. Checking at most once a second still picks up a new or
stopped operation well within one sample interval (1 s at the least).
"""

from __future__ import annotations

import logging
import time
from typing import Any

from django_celery_beat.schedulers import DatabaseScheduler

from config.probe import BEAT_HEARTBEAT_EVERY_S, record_beat

log = logging.getLogger(__name__)

CHANGE_CHECK_INTERVAL_S = 1.0


class Scheduler(DatabaseScheduler):
    _last_change_check = float("-inf")
    _last_heartbeat = float("-inf")

    def tick(self, *args: Any, **kwargs: Any) -> float:
        """Each loop of beat: also the heartbeat its health probe reads (config.probe)."""
        now = time.monotonic()
        if now - self._last_heartbeat >= BEAT_HEARTBEAT_EVERY_S:
            self._last_heartbeat = now
            try:
                record_beat()
            except Exception:  # a cache outage must not stop the schedules
                log.exception("beat: heartbeat not recorded")
        return super().tick(*args, **kwargs)

    def schedule_changed(self) -> bool:
        now = time.monotonic()
        if now - self._last_change_check < CHANGE_CHECK_INTERVAL_S:
            return False
        self._last_change_check = now
        return super().schedule_changed()
