"""The Instantel MiniMate Plus link: framing, transport, client. Imports no Django."""

from devices.links.seismo.client import MiniMateClient, Progress
from devices.links.seismo.errors import (
    ChecksumError,
    CommandRejected,
    LinkDropped,
    LinkRefused,
    LinkTimeout,
    NoSuchEvent,
    ProtocolError,
    SeismoLinkError,
)
from devices.links.seismo.records import (
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
from devices.links.seismo.transport import LinkTarget, parse_conn_key

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
