"""Beat's scheduler: django-celery-beat's DatabaseScheduler, with change checks throttled.

The stock scheduler asks the database whether any PeriodicTask changed (a commit and a
query) before every single task it sends. With one schedule per running PNM operation beat
sends tens of tasks a second, and that check was a third of its CPU and the latency that
kept it from sending on time. Checking at most once a second still picks up a new or
stopped operation well within one sample interval (1 s at the least).
"""

from __future__ import annotations

import time

from django_celery_beat.schedulers import DatabaseScheduler

CHANGE_CHECK_INTERVAL_S = 1.0


class Scheduler(DatabaseScheduler):
    _last_change_check = float("-inf")

    def schedule_changed(self) -> bool:
        now = time.monotonic()
        if now - self._last_change_check < CHANGE_CHECK_INTERVAL_S:
            return False
        self._last_change_check = now
        return super().schedule_changed()
