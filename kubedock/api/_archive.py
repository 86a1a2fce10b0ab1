"""Archive endpoints: `PUT`, `GET` and `HEAD /containers/{id}/archive?path=`."""

from __future__ import annotations

from collections.abc import AsyncIterator

from quart import Blueprint, Response, request

from .. import engine as engines
from .. import wire
from ._app import engine
from ._errors import bad_request
from ._parse import query_bool

blueprint = Blueprint("archive", __name__)


def _path() -> str:
    path = request.args.get("path") or ""
    if not path:
        raise bad_request("path is required")
    return path


async def _body() -> AsyncIterator[bytes]:
    async for chunk in request.body:
        yield chunk


@blueprint.route("/containers/<ref>/archive", methods=["PUT"])
async def put_archive(ref: str) -> Response:
    container = engine().get(ref)
    # copyUIDGID is not honoured: owners come from the tar, as Docker does without it.
    await engines.copy_in(engine(), container, _path(), _body(),
                          no_overwrite_dir_non_dir=query_bool(request.args, "noOverwriteDirNonDir"),
                          size=request.content_length)
    # docker-py and dockerode accept exactly 200 with an empty body.
    return Response(b"", status=200)


@blueprint.route("/containers/<ref>/archive", methods=["HEAD"])
async def stat_archive(ref: str) -> Response:
    container = engine().get(ref)
    path_stat = await engines.stat_path(engine(), container, _path())
    response = Response(b"", status=200)
    response.headers[wire.PATH_STAT_HEADER] = wire.encode_path_stat(path_stat)
    return response


@blueprint.route("/containers/<ref>/archive", methods=["GET"])
async def get_archive(ref: str) -> Response:
    container = engine().get(ref)
    path_stat, content = await engines.open_archive(engine(), container, _path())
    response = Response(content, status=200, content_type="application/x-tar")
    response.headers[wire.PATH_STAT_HEADER] = wire.encode_path_stat(path_stat)
    return response
