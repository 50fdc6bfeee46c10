"""SUB codes: the public command table, plus our stand-ins where it has none."""

from __future__ import annotations

POLL = 0x5B  # startup handshake, opens every session
SERIAL = 0x15  # 10 B serial number
IDENTITY = 0x01  # 152 B firmware / model / calibration date
CONFIG_READ = 0x1A  # compliance config (one frame in our stand-in)
CONFIG_WRITE = 0x68  # config blob; the unit validates and stages it
CONFIG_COMMIT = 0x73  # applies the staged blob, answers the new revision
WALK_FIRST = 0x1E  # key4 + data8 of the first event
WALK_NEXT = 0x1F  # key4 + data8 of the event after the given key
WAVEFORM_HEADER = 0x0A  # variable length
EVENT_RECORD = 0x0C  # 210 B
STREAM = 0x5A  # bulk waveform chunks, counter +0x0400 per request
MONITOR_STATUS = 0x1C  # 58 B idle, 42 B monitoring
STORAGE_RANGE = 0x06  # 36 B, last 8 = first and last key
ERASE_BEGIN = 0xA3
ERASE_CONFIRM = 0xA2
MONITOR_START = 0x3A  # stand-in: the public notes do not name these two
MONITOR_STOP = 0x3B

STREAM_COUNTER_STEP = 0x0400
STORAGE_RANGE_LEN = 36
