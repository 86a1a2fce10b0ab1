"""A container waiting for its restart policy to start it again, as the API shows it."""

from __future__ import annotations

import json

import httpx
import trio

from kubedock.engine import Engine


async def test_a_restarting_container_as_docker_shows_it(client: httpx.AsyncClient,
                                                         engine: Engine) -> None:
    created = await client.post("/containers/create", params={"name": "job"}, json={
        "Image": "busybox", "HostConfig": {"RestartPolicy": {"Name": "always"}}})
    assert created.status_code == 201, created.text
    container = engine.get("job")
    # What the engine makes of an exit that its policy restarts.
    container.status, container.exit_code, container.restart_count = "exited", 3, 1
    container.pending_restart = trio.CancelScope()

    document = (await client.get("/containers/job/json")).json()
    state = document["State"]
    assert (state["Status"], state["Running"], state["Restarting"]) == ("restarting", True, True)
    assert (state["ExitCode"], state["Pid"], document["RestartCount"]) == (3, 0, 1)
    # It counts as running: listed without `all`, and found by its status.
    listed = (await client.get("/containers/json")).json()
    assert [(c["Names"], c["State"]) for c in listed] == [(["/job"], "restarting")]
    assert listed[0]["Status"].startswith("Restarting (3)")
    by_status = await client.get("/containers/json", params={
        "all": "1", "filters": json.dumps({"status": ["restarting"]})})
    assert len(by_status.json()) == 1
    exec_create = await client.post("/containers/job/exec", json={"Cmd": ["true"]})
    assert exec_create.status_code == 409
    assert exec_create.json()["message"] == (
        f"Container {container.id} is restarting, wait until the container is running")
    removal = await client.delete("/containers/job")
    assert removal.status_code == 409
    assert removal.json()["message"].startswith("You cannot remove a restarting container")
    assert (await client.post("/containers/job/start")).status_code == 304
