"""Exec endpoints; exec start takes over the connection for Docker's raw stream."""

from __future__ import annotations

from quart import Blueprint, Response, jsonify, request

from ..engine import AttachRequest, ExecConfig
from ._app import engine, request_body
from ._errors import bad_request
from ._front import DOCKER_HEADERS
from ._hijack import HIJACK_EXTENSION, Hijack
from ._parse import field, json_object, query_bool, query_int, string_list

blueprint = Blueprint("exec", __name__)

MULTIPLEXED = b"application/vnd.docker.multiplexed-stream"
RAW = b"application/vnd.docker.raw-stream"


@blueprint.route("/containers/<ref>/exec", methods=["POST"])
async def create_exec(ref: str) -> tuple[Response, int]:
    container = engine().get(ref)
    body = json_object(await request_body())
    cmd = string_list(body, "Cmd")
    if not cmd:
        raise bad_request("No exec command specified")
    config = ExecConfig(
        cmd=cmd,
        env=string_list(body, "Env") or (),
        working_dir=field(body, "WorkingDir", str) or None,
        user=field(body, "User", str) or None,
        tty=bool(field(body, "Tty", bool)),
        attach_stdin=bool(field(body, "AttachStdin", bool)),
        attach_stdout=bool(field(body, "AttachStdout", bool)),
        attach_stderr=bool(field(body, "AttachStderr", bool)),
        privileged=bool(field(body, "Privileged", bool)),
        detach_keys=field(body, "DetachKeys", str) or None,
    )
    record = engine().create_exec(container, config)
    return jsonify({"Id": record.id}), 201


def _stream_headers(tty: bool) -> list[tuple[bytes, bytes]]:
    content_type = RAW if tty else MULTIPLEXED
    return [(b"Content-Type", content_type),
            *((name.encode(), value.encode()) for name, value in DOCKER_HEADERS)]


def hijack() -> Hijack:
    extension = request.scope["extensions"][HIJACK_EXTENSION]
    assert isinstance(extension, Hijack), "served without kubedock's hijack extension"
    return extension


@blueprint.route("/exec/<exec_id>/start", methods=["POST"])
async def start_exec(exec_id: str) -> Response:
    record = engine().execs.get(exec_id)
    body = json_object(await request_body(), allow_empty=True)
    tty = bool(field(body, "Tty", bool))
    if field(body, "Detach", bool):
        await engine().start_exec(record, None, tty=tty)
        return Response(b"", status=200)
    size = field(body, "ConsoleSize", list)
    if record.config.tty and size and len(size) == 2 and all(isinstance(n, int) for n in size):
        record.terminal.request(size[1], size[0])
    taker = hijack()
    stream = await taker.take(
        101 if taker.upgrade_requested else 200,
        _stream_headers(tty),
    )
    await engine().start_exec(record, stream, tty=tty)
    return Response(b"")


@blueprint.route("/exec/<exec_id>/json", methods=["GET"])
async def inspect_exec(exec_id: str) -> Response:
    record = engine().execs.get(exec_id)
    record.mark_read()
    config = record.config
    return jsonify({
        "ID": record.id,
        "Running": record.running,
        "ExitCode": record.exit_code,
        "ProcessConfig": {
            "tty": config.tty, "entrypoint": config.cmd[0], "arguments": list(config.cmd[1:]),
            "privileged": config.privileged, "user": config.user or "",
        },
        "OpenStdin": config.attach_stdin,
        "OpenStderr": config.attach_stderr,
        "OpenStdout": config.attach_stdout,
        "CanRemove": False,
        "ContainerID": record.container.id,
        "DetachKeys": config.detach_keys or "",
        "Pid": 0,
    })


@blueprint.route("/exec/<exec_id>/resize", methods=["POST"])
async def resize_exec(exec_id: str) -> Response:
    record = engine().execs.get(exec_id)
    height, width = query_int(request.args, "h"), query_int(request.args, "w")
    if not height or not width or height < 0 or width < 0:
        raise bad_request("invalid size: want positive h and w")
    record.terminal.request(width, height)
    return Response(b"", status=200)


@blueprint.route("/containers/<ref>/attach", methods=["POST"])
async def attach(ref: str) -> Response:
    container = engine().get(ref)
    args = request.args
    attach_request = AttachRequest(
        stdin=query_bool(args, "stdin"), stdout=query_bool(args, "stdout"),
        stderr=query_bool(args, "stderr"), logs=query_bool(args, "logs"),
        stream=query_bool(args, "stream"), detach_keys=args.get("detachKeys") or None,
    )
    await request_body()  # Docker ignores a body; the connection is taken after it
    taker = hijack()
    stream = await taker.take(
        101 if taker.upgrade_requested else 200,
        _stream_headers(container.config.tty),
    )
    await engine().attach(container, stream, attach_request)
    return Response(b"")


@blueprint.route("/containers/<ref>/resize", methods=["POST"])
async def resize_container(ref: str) -> Response:
    container = engine().get(ref)
    height, width = query_int(request.args, "h"), query_int(request.args, "w")
    if height is None or width is None or height < 0 or width < 0:
        raise bad_request("invalid size: want h and w")
    container.terminal.request(width, height)
    return Response(b"", status=200)
