"""Pure, sans-I/O wire formats: bytes in, values out, and back.

Nothing here performs I/O or imports the rest of kubedock. Decoders raise `WireFormatError`, and
only that, for malformed input.
"""

from ._channel import (
    CHANNEL_SUBPROTOCOLS,
    Channel,
    ChannelClosed,
    ChannelData,
    ChannelMessage,
    ExitStatus,
    decode_channel_message,
    encode_close_stdin,
    encode_resize,
    encode_stdin,
    exit_code_from_status,
)
from ._datagram import (
    MAX_DATAGRAM,
    MAX_PEERS,
    PEER_IDLE_SECONDS,
    Datagram,
    DatagramDecoder,
    encode_datagram,
)
from ._detach import DEFAULT_DETACH_KEYS, DetachScanner, parse_detach_keys
from ._docker_stream import Stream, StreamDemuxer, frame
from ._errors import WireFormatError
from ._pathstat import (
    PATH_STAT_HEADER,
    PathStat,
    decode_path_stat,
    encode_path_stat,
    go_file_mode,
    posix_mode,
)
from ._portforward import (
    PORTFORWARD_SUBPROTOCOL,
    PortData,
    PortError,
    PortForwardChannels,
    PortForwardEvent,
)
from ._pull import (
    PullFailure,
    PullProgress,
    decode_pull_line,
    failure_line,
    final_status_line,
    progress_line,
)
from ._websocket import (
    Accepted,
    ClientHandshake,
    Message,
    MessageDecoder,
    Opcode,
    Rejected,
    decode_close,
    encode_close,
    encode_frame,
    mask,
)

__all__ = [
    "CHANNEL_SUBPROTOCOLS",
    "DEFAULT_DETACH_KEYS",
    "MAX_DATAGRAM",
    "MAX_PEERS",
    "PATH_STAT_HEADER",
    "PEER_IDLE_SECONDS",
    "PORTFORWARD_SUBPROTOCOL",
    "Accepted",
    "Channel",
    "ChannelClosed",
    "ChannelData",
    "ChannelMessage",
    "ClientHandshake",
    "Datagram",
    "DatagramDecoder",
    "DetachScanner",
    "ExitStatus",
    "Message",
    "MessageDecoder",
    "Opcode",
    "PathStat",
    "PortData",
    "PortError",
    "PortForwardChannels",
    "PortForwardEvent",
    "PullFailure",
    "PullProgress",
    "Rejected",
    "Stream",
    "StreamDemuxer",
    "WireFormatError",
    "decode_channel_message",
    "decode_close",
    "decode_path_stat",
    "decode_pull_line",
    "encode_close",
    "encode_close_stdin",
    "encode_datagram",
    "encode_frame",
    "encode_path_stat",
    "encode_resize",
    "encode_stdin",
    "exit_code_from_status",
    "failure_line",
    "final_status_line",
    "frame",
    "go_file_mode",
    "mask",
    "parse_detach_keys",
    "posix_mode",
    "progress_line",
]
