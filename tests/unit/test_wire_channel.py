import contextlib
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kubedock.wire import (
    Channel,
    ChannelClosed,
    ChannelData,
    ExitStatus,
    WireFormatError,
    decode_channel_message,
    encode_close_stdin,
    encode_resize,
    encode_stdin,
    exit_code_from_status,
)

NON_ZERO = (
    b'{"metadata":{},"status":"Failure","message":"command terminated with non-zero exit code:'
    b' error executing command [sh -c exit 3], exit code 3","reason":"NonZeroExitCode",'
    b'"details":{"causes":[{"reason":"ExitCode","message":"3"}]}}'
)
NOT_FOUND = (
    b'{"metadata":{},"status":"Failure","message":"Internal error occurred: error executing'
    b' command in container: failed to exec in container: failed to start exec \\"abc\\":'
    b' OCI runtime exec failed: exec failed: unable to start container process: exec: \\"nope\\":'
    b' executable file not found in $PATH: unknown","reason":"InternalError","code":500}'
)


def test_encoders() -> None:
    assert encode_stdin(b"ls\n") == b"\x00ls\n"
    assert encode_resize(80, 24) == b'\x04{"Width":80,"Height":24}'
    assert encode_close_stdin() == b"\xff\x00"


def test_exit_codes() -> None:
    assert exit_code_from_status(b'{"metadata":{},"status":"Success"}') == 0
    assert exit_code_from_status(NON_ZERO) == 3
    # Whatever kept the command from starting, a missing executable included, Docker says 126.
    assert exit_code_from_status(NOT_FOUND) == 126
    no_dir = b'{"status":"Failure","message":"chdir to cwd (\\"/x\\"): no such file or directory"}'
    assert exit_code_from_status(no_dir) == 126
    assert exit_code_from_status(b'{"status":"Failure","reason":"InternalError"}') == 126


def test_a_command_that_could_not_start_is_explained_in_the_runtime_words() -> None:
    assert decode_channel_message(b"\x03" + NOT_FOUND) == ExitStatus(
        126,
        json.loads(NOT_FOUND)["message"],
        'OCI runtime exec failed: exec failed: unable to start container process: exec: "nope":'
        " executable file not found in $PATH: unknown",
    )
    other = decode_channel_message(b'\x03{"status":"Failure","message":"no such pod"}')
    assert isinstance(other, ExitStatus) and other.start_failure == "no such pod"
    ran = decode_channel_message(b"\x03" + NON_ZERO)
    assert isinstance(ran, ExitStatus) and ran.start_failure is None


@pytest.mark.parametrize(
    "status",
    [
        b"",
        b"exit 3",
        b"[]",
        b'{"status":"Unknown"}',
        b'{"status":"Failure","reason":"NonZeroExitCode"}',
        b'{"status":"Failure","reason":"NonZeroExitCode","details":{"causes":[{"reason":"ExitCode","message":"x"}]}}',
        b"\xff\xfe",
    ],
)
def test_bad_status_raises_wire_format_error(status: bytes) -> None:
    with pytest.raises(WireFormatError):
        exit_code_from_status(status)


def test_decode_messages() -> None:
    assert decode_channel_message(b"\x01hi") == ChannelData(Channel.STDOUT, b"hi")
    assert decode_channel_message(b"\x02") == ChannelData(Channel.STDERR, b"")
    assert decode_channel_message(b"\x03") == ChannelData(Channel.ERROR, b"")
    assert decode_channel_message(b"\x03" + NON_ZERO) == ExitStatus(
        3,
        "command terminated with non-zero exit code: error executing command [sh -c exit 3],"
        " exit code 3",
    )
    assert decode_channel_message(b"\xff\x00") == ChannelClosed(Channel.STDIN)


@pytest.mark.parametrize("message", [b"", b"\x04{}", b"\x07x", b"\xff", b"\xff\x09", b"\x03{"])
def test_bad_messages(message: bytes) -> None:
    with pytest.raises(WireFormatError):
        decode_channel_message(message)


@given(st.sampled_from([Channel.STDIN, Channel.STDOUT, Channel.STDERR]), st.binary())
def test_data_round_trip(channel: Channel, data: bytes) -> None:
    assert decode_channel_message(bytes([channel]) + data) == ChannelData(channel, data)


@given(st.integers(min_value=1, max_value=255))
def test_exit_code_round_trip(code: int) -> None:
    status = {
        "status": "Failure",
        "reason": "NonZeroExitCode",
        "details": {"causes": [{"reason": "ExitCode", "message": str(code)}]},
    }
    assert exit_code_from_status(json.dumps(status).encode()) == code


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(),
    lambda children: st.lists(children) | st.dictionaries(st.text(), children),
    max_leaves=10,
)


@given(st.binary() | json_values.map(lambda value: json.dumps(value).encode()))
def test_anything_raises_only_wire_format_error(message: bytes) -> None:
    for candidate in (message, b"\x03" + message):
        with contextlib.suppress(WireFormatError):
            decode_channel_message(candidate)


statuses = st.fixed_dictionaries(
    {"status": st.sampled_from(["Success", "Failure"])},
    optional={
        "reason": st.sampled_from(["NonZeroExitCode", "InternalError"]) | json_values,
        "message": json_values,
        "details": st.fixed_dictionaries(
            {}, optional={"causes": st.lists(st.dictionaries(st.text(), json_values)) | json_values}
        ),
    },
)


@given(statuses)
def test_status_shapes_raise_only_wire_format_error(status: dict[str, object]) -> None:
    try:
        code = exit_code_from_status(json.dumps(status).encode())
    except WireFormatError:
        return
    assert isinstance(code, int)
