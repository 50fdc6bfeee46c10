"""The Instantel MiniMate Plus link: framing, transport, client. Imports no Django."""

from seismographs.protocol.client import MiniMateClient, Progress
from seismographs.protocol.errors import (
    ChecksumError,
    CommandRejected,
    LinkDropped,
    LinkRefused,
    LinkTimeout,
    NoSuchEvent,
    ProtocolError,
    SeismoLinkError,
)
from seismographs.protocol.records import (
    CHANNELS,
    ChannelPeak,
    DeviceConfig,
    EventHeader,
    EventKey,
    Identity,
    MonitorStatus,
    ProjectInfo,
    Waveform,
)
from seismographs.protocol.transport import LinkTarget, parse_conn_key

__all__ = [
    "CHANNELS",
    "ChannelPeak",
    "ChecksumError",
    "CommandRejected",
    "DeviceConfig",
    "EventHeader",
    "EventKey",
    "Identity",
    "LinkDropped",
    "LinkRefused",
    "LinkTarget",
    "LinkTimeout",
    "MiniMateClient",
    "MonitorStatus",
    "NoSuchEvent",
    "Progress",
    "ProjectInfo",
    "ProtocolError",
    "SeismoLinkError",
    "Waveform",
    "parse_conn_key",
]
