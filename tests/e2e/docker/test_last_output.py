"""The last output of a supervised one-shot container (every container, by default) is in its
log once `wait` returns (the supervisor reports the end only after the runtime has taken what
the program left in its pipes), and in the follow of docker-py's `run`, read after the removal.
A few at a time."""

from __future__ import annotations

import docker
import pytest
from last_output import CASES, stress

pytestmark = pytest.mark.cluster

RUNS = 30
AT_ONCE = 4


@pytest.mark.parametrize("case", CASES)
def test_the_last_output_is_in_the_log_when_wait_returns(client: docker.DockerClient,
                                                         case: str) -> None:
    lines: list[str] = []
    tally = stress(client, case, RUNS, AT_ONCE, report=lines.append)
    assert tally.missed == 0, "\n".join(lines)


def test_the_last_output_is_kept_for_a_container_that_removes_itself(
    client: docker.DockerClient
) -> None:
    """docker-py's run(remove=True) follows the log, waits, removes the container and then reads
    what the follow sent: the removal lets the follow read the rest of the log first."""
    lines: list[str] = []
    tally = stress(client, "lines", RUNS, AT_ONCE, remove=True, report=lines.append)
    assert tally.missed == 0, "\n".join(lines)
