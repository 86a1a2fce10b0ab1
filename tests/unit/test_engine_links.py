"""Links against a scripted cluster: the linked container answers to the alias."""

from __future__ import annotations

import pytest
import trio
import trio.testing
from engine_fake import FakeCluster
from test_engine_jobs import new_engine

from kubedock.engine import ContainerConfig, EngineError, InvalidParameter


async def test_a_legacy_link_names_the_linked_container(
    autojump_clock: trio.testing.MockClock, nursery: trio.Nursery,
) -> None:
    cluster = FakeCluster()
    engine = await new_engine(nursery, cluster, names="dns")
    with pytest.raises(InvalidParameter, match="could not get container for db"):
        engine.create("web", ContainerConfig(image="busybox", links=(("db", "database"),)))
    db = engine.create("db", ContainerConfig(image="redis:7"))
    web = engine.create("web", ContainerConfig(image="busybox", links=(("db", "database"),)))
    assert engine.legacy_links(web) == ["/db:/web/database"]
    assert "database" in engine.dns_names(db)
    with pytest.raises(EngineError, match="Cannot link to a non running container: /db AS "
                                          "/web/database"):
        await engine.start(web)
    await engine.start(db)
    assert db.pod_name is not None
    patches = len(cluster.calls)
    await engine.start(web)
    # The running db learns its new name before web starts.
    assert ("patch_pod", db.pod_name) in cluster.calls[patches:]
    annotations = cluster.pods[db.pod_name]["metadata"]["annotations"]
    assert "database" in annotations.values()
    # The alias goes with the linking container.
    await engine.remove(web, force=True)
    assert "database" not in engine.dns_names(db)
    assert "database" not in cluster.pods[db.pod_name]["metadata"]["annotations"].values()


async def test_a_network_link_may_name_a_container_created_later(
    autojump_clock: trio.testing.MockClock, nursery: trio.Nursery,
) -> None:
    engine = await new_engine(nursery, FakeCluster(), names="dns")
    engine.networks.create("app")
    web = engine.create("web", ContainerConfig(
        image="busybox", networks={"app": ()}, network_links={"app": (("upstream", "bar"),)}))
    await engine.start(web)
    upstream = engine.create("upstream", ContainerConfig(image="busybox", networks={"app": ()}))
    assert "bar" in engine.dns_names(upstream)
    # Only on the networks the two share.
    elsewhere = engine.create("other", ContainerConfig(image="busybox"))
    assert "bar" not in engine.dns_names(elsewhere)
