"""What the engine needs from a cluster: `Cluster` is the real one, tests script fakes."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from datetime import datetime
from typing import Any, Literal, Protocol

from ._channels import ExecChannel, PortForwardStream
from ._ownership import Kind


class ClusterBoundary(Protocol):
    """The calls the engine makes, with `Cluster`'s meaning (see there)."""

    async def create_pod(self, manifest: Mapping[str, Any]) -> dict[str, Any]: ...

    async def patch_pod(self, name: str, patch: Mapping[str, Any]) -> None: ...

    async def resize_pod(self, name: str, patch: Mapping[str, Any]) -> None: ...

    async def get_node(self, name: str) -> dict[str, Any]: ...

    async def node_summary(self, name: str) -> dict[str, Any]: ...
    async def add_ephemeral_container(self, pod: str, container: Mapping[str, Any]) -> None: ...

    async def delete_pod(self, name: str, *, grace_seconds: int | None = None) -> bool: ...

    async def list_objects(self, kind: Kind, label_selector: str) -> list[dict[str, Any]]: ...

    async def get_object(self, kind: Kind, name: str) -> dict[str, Any]: ...

    async def create_object(self, kind: Kind, manifest: Mapping[str, Any]) -> dict[str, Any]: ...

    async def replace_object(self, kind: Kind, manifest: Mapping[str, Any]) -> dict[str, Any]: ...

    async def delete_object(
        self, kind: Kind, name: str, *, grace_seconds: int | None = None,
        resource_version: str | None = None,
    ) -> None: ...

    def logs(
        self, pod: str, *, follow: bool = False, timestamps: bool = False,
        tail_lines: int | None = None, since_seconds: int | None = None,
        since_time: datetime | None = None, stream: Literal["Stdout", "Stderr"] | None = None,
        container: str = ...,
    ) -> AbstractAsyncContextManager[AsyncIterator[bytes]]: ...

    async def split_streams_supported(self) -> bool: ...

    def exec(
        self, pod: str, argv: Sequence[str], *, stdin: bool = False, stdout: bool = True,
        stderr: bool = True, tty: bool = False, container: str = ...,
    ) -> AbstractAsyncContextManager[ExecChannel]: ...

    def attach(
        self, pod: str, *, stdin: bool = False, stdout: bool = True, stderr: bool = True,
        tty: bool = False, container: str = ...,
    ) -> AbstractAsyncContextManager[ExecChannel]: ...

    async def open_port_forward(self, pod: str, port: int) -> PortForwardStream: ...
