"""`POST /build` against a registry in memory: Docker's build JSON, the image pushed and known
by its tags, options refused by name."""

from __future__ import annotations

import base64
import io
import json
import re
import tarfile
from collections.abc import AsyncIterator

import httpx
import pytest
import trio
from clusterless import clusterless_engine
from fake_registry import FakeRegistry

from kubedock.api import create_app
from kubedock.engine import Engine, ImageStore, RegistrySource
from kubedock.registry import DOCKER_HUB, Platform, RegistryClient

DOCKERFILE = b"""\
FROM busybox:1.36
ARG WHO=world
ENV GREETING="hi ${WHO}"
COPY a.txt /app/
EXPOSE 8080
CMD ["cat", "/app/a.txt"]
"""


@pytest.fixture
def fake() -> FakeRegistry:
    fake = FakeRegistry()
    fake.add_image("library/busybox", "1.36", {"Env": ["PATH=/bin"], "Cmd": ["sh"]})
    return fake


@pytest.fixture
async def engine(nursery: trio.Nursery, fake: FakeRegistry) -> AsyncIterator[Engine]:
    async with httpx.AsyncClient(transport=fake.transport()) as registry_http:
        registry = RegistryClient(registry_http, mirrors={DOCKER_HUB: "https://registry.test"})
        engine: Engine = clusterless_engine(nursery)
        engine.images = ImageStore(RegistrySource(registry, Platform("linux", "amd64"),
                                                  timeout=5))
        yield engine


@pytest.fixture
async def client(engine: Engine) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=create_app(engine))
    async with httpx.AsyncClient(transport=transport, base_url="http://docker") as http:
        yield http


def _context(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def _lines(response: httpx.Response) -> list[dict[str, object]]:
    return [json.loads(line) for line in response.text.splitlines()]


async def test_a_build_streams_docker_json_and_its_tags_run(client: httpx.AsyncClient,
                                                            fake: FakeRegistry) -> None:
    answer = await client.post(
        "/v1.41/build", params={"t": ["demo:1", "registry.test/team/demo:2"],
                                "buildargs": json.dumps({"WHO": "you"}), "rm": "1",
                                "labels": json.dumps({"built": "yes"})},
        content=_context({"Dockerfile": DOCKERFILE, "a.txt": b"hello\n"}))
    assert answer.status_code == 200
    lines = _lines(answer)
    # Docker sends a step line's end apart, and ` ---> ` with the base image's id.
    base_id = (await client.get("/images/busybox:1.36/json")).json()["Id"]
    assert lines[:3] == [{"stream": "Step 1/7 : FROM busybox:1.36"}, {"stream": "\n"},
                         {"stream": f" ---> {base_id[7:19]}\n"}]
    # The build's labels: a step of their own at the end, as Docker's classic builder has it.
    assert {"stream": "Step 7/7 : LABEL built=yes"} in lines
    image_id = lines[-4]["aux"]["ID"]  # type: ignore[index]
    assert lines[-3:] == [{"stream": f"Successfully built {image_id[7:19]}\n"},
                          {"stream": "Successfully tagged demo:1\n"},
                          {"stream": "Successfully tagged registry.test/team/demo:2\n"}]
    inspected = (await client.get("/images/demo:1/json")).json()
    assert inspected["Id"] == image_id
    assert inspected["Config"]["Env"] == ["PATH=/bin", "GREETING=hi you"]
    assert inspected["Config"]["Cmd"] == ["cat", "/app/a.txt"]
    assert inspected["Config"]["Labels"] == {"built": "yes"}
    assert len(inspected["RootFS"]["Layers"]) == 2
    assert ("team/demo", "2") in fake.manifests and ("library/demo", "1") in fake.manifests
    again = _lines(await client.post(
        "/build", params={"t": "demo:1", "buildargs": json.dumps({"WHO": "you"}),
                          "labels": json.dumps({"built": "yes"})},
        content=_context({"Dockerfile": DOCKERFILE, "a.txt": b"hello\n"})))
    assert {"stream": " ---> Using cache\n"} in again
    assert {"aux": {"ID": image_id}} in again


async def test_quiet_prints_the_id_only(client: httpx.AsyncClient) -> None:
    lines = _lines(await client.post("/build", params={"q": "1"}, content=_context(
        {"Dockerfile": b"FROM busybox:1.36\nENV A=1\n"})))
    # As Docker: no `aux`, the id alone.
    [line] = lines
    assert re.fullmatch(r"sha256:[0-9a-f]{64}\n", line["stream"])  # type: ignore[arg-type]


async def test_quiet_sends_what_it_held_back_when_the_build_fails(
        client: httpx.AsyncClient) -> None:
    context = _context({"Dockerfile": b"FROM busybox:1.36 AS a\nENV A=1\nFROM a\nRUN true\n"})
    quiet = _lines(await client.post("/build", params={"q": "1", "nocache": "1"},
                                     content=context))
    loud = _lines(await client.post("/build", params={"nocache": "1"}, content=context))
    # As Docker: the whole output, `aux` included, then the error.
    assert [line.keys() for line in quiet] == [line.keys() for line in loud]
    assert sum("aux" in line for line in quiet) == 1 and "error" in quiet[-1]


async def test_a_run_without_a_sandbox_fails_in_the_stream(client: httpx.AsyncClient) -> None:
    lines = _lines(await client.post("/build", content=_context(
        {"Dockerfile": b"FROM busybox:1.36\nRUN true\n"})))
    message = "RUN needs kubedock's own image (--initimage) for its sandbox"
    # Docker gives a code only for a RUN that exited non-zero.
    assert lines[-1] == {"errorDetail": {"message": message}, "error": message}


@pytest.mark.parametrize(("params", "status", "message"), [
    ({"remote": "https://example.invalid/repo.git"}, 501,
     "build option remote=https://example.invalid/repo.git is not supported"),
    ({"memory": "1000000"}, 501, "build option memory=1000000 is not supported"),
    ({"extrahosts": "a.test:nope"}, 400, 'invalid IP address in add-host: "nope"'),
    ({"extrahosts": "a.test:host-gateway"}, 501, "build option extrahosts=name:host-gateway"),
    ({"cachefrom": '["a"'}, 400, "invalid cachefrom"),
    ({"cachefrom": '"a"'}, 400, "invalid cachefrom: want a JSON array of strings"),
    ({"version": "2"}, 501, "BuildKit (version=2) is not supported by kubedock"),
    ({"platform": "linux/s390x"}, 501, "build option platform=linux/s390x is not supported"),
    ({"dockerfile": "Nope"}, 400, "Cannot locate specified Dockerfile: Nope"),
    ({"target": "nosuch"}, 400, "failed to reach build target nosuch in Dockerfile"),
    ({"t": "Bad:Name:x"}, 400, "invalid reference format"),
    ({"buildargs": "{"}, 400, "invalid buildargs"),
])
async def test_what_cannot_be_built_is_an_error_answer(client: httpx.AsyncClient,
                                                       params: dict[str, str], status: int,
                                                       message: str) -> None:
    answer = await client.post("/build", params=params, content=_context(
        {"Dockerfile": b"FROM busybox:1.36\n"}))
    assert answer.status_code == status
    assert answer.json()["message"].startswith(message)


async def test_neutral_values_of_unsupported_options_are_accepted(
        client: httpx.AsyncClient) -> None:
    # What the docker CLI's classic builder sends for options it was not given.
    params = {"buildargs": "{}", "cachefrom": "[]", "cgroupparent": "", "cpuperiod": "0",
              "cpuquota": "0", "cpusetcpus": "", "cpusetmems": "", "cpushares": "0",
              "dockerfile": "Dockerfile", "labels": "{}", "memory": "0", "memswap": "0",
              "networkmode": "default", "rm": "1", "shmsize": "0", "target": "",
              "ulimits": "null", "version": "1", "platform": "linux/amd64"}
    answer = await client.post("/build", params=params, content=_context(
        {"Dockerfile": b"FROM busybox:1.36\n"}))
    assert "aux" in _lines(answer)[-2]


async def test_cache_from_takes_the_steps_of_the_images_named(client: httpx.AsyncClient) -> None:
    context = _context({"Dockerfile": b"FROM busybox:1.36\nENV A=1\nCOPY a /\n", "a": b"a"})
    await client.post("/build", params={"t": "cf:1"}, content=context)
    for cache_from, cached in (('["cf:1"]', 2), ('["nosuchtag"]', 0), ('["Not A Name"]', 0)):
        lines = _lines(await client.post("/build", params={"cachefrom": cache_from},
                                         content=context))
        assert lines.count({"stream": " ---> Using cache\n"}) == cached, cache_from


async def test_prune_forgets_the_cache(client: httpx.AsyncClient) -> None:
    context = _context({"Dockerfile": b"FROM busybox:1.36\nCOPY a /\n", "a": b"a"})
    await client.post("/build", content=context)
    pruned = (await client.post("/build/prune")).json()
    assert pruned["SpaceReclaimed"] > 0
    again = _lines(await client.post("/build", content=context))
    assert {"stream": " ---> Using cache\n"} not in again


async def test_an_untagged_build_runs_by_its_id(client: httpx.AsyncClient,
                                                fake: FakeRegistry) -> None:
    lines = _lines(await client.post("/build", content=_context(
        {"Dockerfile": b"FROM busybox:1.36\nCMD [\"true\"]\n"})))
    image_id = lines[-2]["aux"]["ID"]  # type: ignore[index]
    assert lines[-1] == {"stream": f"Successfully built {image_id[7:19]}\n"}
    assert (await client.get(f"/images/{image_id[7:19]}/json")).json()["Id"] == image_id
    assert ("kubedock/untagged", image_id[7:19]) in fake.manifests


@pytest.mark.parametrize("credentials", [None, {"username": "user", "password": "pw"}])
async def test_private_base_images_take_the_build_s_credentials(
        client: httpx.AsyncClient, fake: FakeRegistry, credentials: dict[str, str] | None
        ) -> None:
    fake.add_image("team/secret", "1", {"Cmd": ["s"]})
    fake.private["team/secret"] = "user:pw"
    config = base64.urlsafe_b64encode(json.dumps(
        {"https://index.docker.io/v1/": credentials} if credentials else {}).encode())
    lines = _lines(await client.post(
        "/build", content=_context({"Dockerfile": b"FROM team/secret:1\nENV A=1\n"}),
        headers={"X-Registry-Config": config.decode()}))
    if credentials:
        assert "aux" in lines[-2]
    else:
        assert str(lines[-1]["error"]).startswith("pull access denied for team/secret")


async def test_rmi_of_a_built_tag_deletes_it_in_the_registry(client: httpx.AsyncClient,
                                                             fake: FakeRegistry) -> None:
    # As `docker compose down --rmi local` removes the images it built.
    await client.post("/build", params={"t": "project-app"}, content=_context(
        {"Dockerfile": b"FROM busybox:1.36\nENV A=1\n"}))
    assert ("library/project-app", "latest") in fake.manifests
    assert (await client.delete("/images/project-app:latest")).status_code == 200
    assert ("library/project-app", "latest") not in fake.manifests
    assert (await client.get("/images/project-app/json")).status_code == 404


async def test_a_local_name_is_pushed_under_one_of_its_own_and_runs_by_it(
        client: httpx.AsyncClient, engine: Engine, fake: FakeRegistry) -> None:
    # Testcontainers (Java, Node) tag what they build `localhost/...`: a name no node can pull.
    lines = _lines(await client.post("/build", params={"t": "localhost/tc/built:1"},
                                     content=_context({"Dockerfile": b"FROM busybox:1.36\n"
                                                                     b"ENV A=1\n"})))
    image_id = lines[-3]["aux"]["ID"]  # type: ignore[index]
    assert lines[-1] == {"stream": "Successfully tagged localhost/tc/built:1\n"}
    assert ("kubedock/untagged", image_id[7:19]) in fake.manifests
    assert not [request for request in fake.requests if "/tc/built/" in request]
    assert (await client.get("/images/localhost/tc/built:1/json")).json()["Id"] == image_id
    created = await client.post("/containers/create", json={"Image": "localhost/tc/built:1"})
    inspected = (await client.get(f"/containers/{created.json()['Id']}/json")).json()
    assert inspected["Config"]["Image"] == "localhost/tc/built:1"
    assert engine.get(created.json()["Id"]).config.pulled_as \
        == f"kubedock/untagged:{image_id[7:19]}"
    assert inspected["Config"]["Env"][-1] == "A=1"
    # So does another name made here (`docker tag`).
    tagged = await client.post("/images/localhost/tc/built:1/tag",
                               params={"repo": "team/renamed", "tag": "2"})
    assert tagged.status_code == 201
    created = await client.post("/containers/create", json={"Image": "team/renamed:2"})
    inspected = (await client.get(f"/containers/{created.json()['Id']}/json")).json()
    assert inspected["Config"]["Image"] == "team/renamed:2"
    assert engine.get(created.json()["Id"]).config.pulled_as \
        == f"kubedock/untagged:{image_id[7:19]}"
