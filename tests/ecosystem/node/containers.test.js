// Testcontainers for Node against the Docker API in DOCKER_HOST (kubedock, or Docker for
// comparison), with the project's offline images (KUBEDOCK_IMAGE names kubedock's own). Run by
// tests/e2e/docker/test_ecosystem_clients.py.
"use strict";

const assert = require("node:assert/strict");
const dgram = require("node:dgram");
const { mkdtemp, rm, writeFile } = require("node:fs/promises");
const os = require("node:os");
const path = require("node:path");
const { setTimeout: sleep } = require("node:timers/promises");
const { test } = require("node:test");
const { Client } = require("pg");
const { PostgreSqlContainer } = require("@testcontainers/postgresql");
const { GenericContainer, Network, Wait, getContainerRuntimeClient } = require("testcontainers");

const TIMEOUT = { timeout: 240_000 };

async function withContainer(builder, body) {
  const container = await builder.start();
  try {
    return await body(container);
  } finally {
    await container.stop();
  }
}

function readAll(stream) {
  return new Promise((resolve, reject) => {
    const chunks = [];
    stream.on("data", (chunk) => chunks.push(Buffer.from(chunk)));
    stream.on("end", () => resolve(Buffer.concat(chunks)));
    stream.on("error", reject);
  });
}

// The files of a tar stream, name -> content (regular files only).
function untar(archive) {
  const files = new Map();
  for (let offset = 0; offset + 512 <= archive.length;) {
    const header = archive.subarray(offset, offset + 512);
    if (header.every((byte) => byte === 0)) break;
    const name = header.subarray(0, 100).toString("utf8").replace(/\0.*$/s, "");
    const size = parseInt(header.subarray(124, 136).toString("utf8").replace(/\0.*$/s, "").trim() || "0", 8);
    const type = String.fromCharCode(header[156]);
    if (type === "0" || type === "\0") files.set(name, archive.subarray(offset + 512, offset + 512 + size));
    offset += 512 + Math.ceil(size / 512) * 512;
  }
  return files;
}

// The payloads of a multiplexed Docker stream, by stream number (1 stdout, 2 stderr).
function demultiplex(buffer) {
  const streams = { 1: "", 2: "" };
  for (let offset = 0; offset + 8 <= buffer.length;) {
    const size = buffer.readUInt32BE(offset + 4);
    streams[buffer[offset]] += buffer.subarray(offset + 8, offset + 8 + size).toString("utf8");
    offset += 8 + size;
  }
  return streams;
}

test("exposed port with a port wait strategy", TIMEOUT, async () => {
  const nginx = new GenericContainer("nginx:1.27").withExposedPorts(80)
    .withWaitStrategy(Wait.forListeningPorts());
  await withContainer(nginx, async (container) => {
    const answer = await fetch(`http://${container.getHost()}:${container.getMappedPort(80)}/`);
    assert.equal(answer.status, 200);
    assert.match(await answer.text(), /nginx/i);
  });
});

test("exposed port with a log wait strategy", TIMEOUT, async () => {
  const redis = new GenericContainer("redis:7").withExposedPorts(6379)
    .withWaitStrategy(Wait.forLogMessage("Ready to accept connections"));
  await withContainer(redis, async (container) => {
    const result = await container.exec(["redis-cli", "ping"]);
    assert.deepEqual([result.exitCode, result.stdout.trim()], [0, "PONG"]);
    assert.ok(container.getMappedPort(6379) > 0);
  });
});

test("exec: exit code, stdout and stderr", TIMEOUT, async () => {
  const busybox = new GenericContainer("busybox:1.36").withCommand(["sleep", "300"]);
  await withContainer(busybox, async (container) => {
    const result = await container.exec(["sh", "-c", "echo out; echo err >&2; exit 3"]);
    assert.equal(result.exitCode, 3);
    assert.equal(result.stdout, "out\n");
    assert.equal(result.stderr, "err\n");
    const inEtc = await container.exec(["pwd"], { workingDir: "/etc", env: { A: "1" } });
    assert.deepEqual([inEtc.exitCode, inEtc.stdout], [0, "/etc\n"]);
  });
});

test("copy a file in before and after start, and out", TIMEOUT, async () => {
  const busybox = new GenericContainer("busybox:1.36").withCommand(["sleep", "300"])
    .withCopyContentToContainer([{ content: "before start\n", target: "/data/before.txt" }]);
  await withContainer(busybox, async (container) => {
    await container.copyContentToContainer([{ content: "after start\n", target: "/data/after.txt", mode: 0o640 }]);
    const listing = await container.exec(["sh", "-c", "cat /data/before.txt /data/after.txt; stat -c %a /data/after.txt"]);
    assert.equal(listing.stdout, "before start\nafter start\n640\n");
    const files = untar(await readAll(await container.copyArchiveFromContainer("/data/after.txt")));
    assert.equal(files.get("after.txt").toString(), "after start\n");
  });
});

test("a network alias reaches another container", TIMEOUT, async () => {
  const network = await new Network().start();
  try {
    const web = new GenericContainer("nginx:1.27").withNetwork(network).withNetworkAliases("web")
      .withExposedPorts(80).withWaitStrategy(Wait.forListeningPorts());
    await withContainer(web, async () => {
      const client = new GenericContainer("busybox:1.36").withNetwork(network).withCommand(["sleep", "300"]);
      await withContainer(client, async (container) => {
        const result = await container.exec(["wget", "-q", "-O", "-", "http://web/"]);
        assert.equal(result.exitCode, 0, result.output);
        assert.match(result.stdout, /nginx/i);
      });
    });
  } finally {
    await network.stop();
  }
});

test("a one-shot container that succeeds", TIMEOUT, async () => {
  const oneShot = new GenericContainer("busybox:1.36").withCommand(["true"])
    .withWaitStrategy(Wait.forOneShotStartup());
  await withContainer(oneShot, async () => {});
});

test("exit code and logs of a one-shot container", TIMEOUT, async () => {
  const oneShot = new GenericContainer("busybox:1.36")
    .withCommand(["sh", "-c", "echo to-stdout; echo to-stderr >&2; exit 7"])
    .withWaitStrategy(Wait.forLogMessage("to-stderr"));
  await withContainer(oneShot, async (container) => {
    const client = await getContainerRuntimeClient();
    const docker = client.container.getById(container.getId());
    assert.equal((await docker.wait()).StatusCode, 7);
    const { State } = await docker.inspect();
    assert.deepEqual([State.Status, State.ExitCode], ["exited", 7]);
    const streams = demultiplex(await docker.logs({ stdout: true, stderr: true, follow: false }));
    assert.deepEqual(streams, { 1: "to-stdout\n", 2: "to-stderr\n" });
    // The library unreferences the log socket: alone, this read would let the process end
    // before the log arrives (with Docker too), so a timer keeps it alive meanwhile.
    const keepAlive = setInterval(() => {}, 1000);
    const merged = (await readAll(await container.logs()).finally(() => clearInterval(keepAlive))).toString();
    assert.match(merged, /to-stdout/);
    assert.match(merged, /to-stderr/);
  });
});

test("the postgres module", TIMEOUT, async () => {
  await withContainer(new PostgreSqlContainer("postgres:16"), async (postgres) => {
    const client = new Client({ connectionString: postgres.getConnectionUri() });
    await client.connect();
    try {
      const { rows } = await client.query("select 40 + 2 as answer");
      assert.equal(rows[0].answer, 42);
    } finally {
      await client.end();
    }
  });
});

test("an image built from a Dockerfile", TIMEOUT, async () => {
  const context = await mkdtemp(path.join(os.tmpdir(), "kubedock-build-"));
  let built;
  try {
    await writeFile(path.join(context, "Dockerfile"), [
      "FROM busybox:1.36", "ARG GREETING", "COPY greet.sh /app/",
      'RUN echo "built with $GREETING" > /app/built.txt',
      'CMD ["sh", "-c", "sh /app/greet.sh; exec sleep 300"]', "",
    ].join("\n"));
    await writeFile(path.join(context, "greet.sh"), "echo greetings from node\n");
    built = await GenericContainer.fromDockerfile(context)
      .withBuildArgs({ GREETING: "a build arg" }).build();
  } finally {
    await rm(context, { recursive: true });
  }
  await withContainer(built.withWaitStrategy(Wait.forLogMessage("greetings from node")), async (container) => {
    const result = await container.exec(["cat", "/app/built.txt"]);
    assert.deepEqual([result.exitCode, result.stdout], [0, "built with a build arg\n"]);
  });
});

test("a report copied out of a container that exited", TIMEOUT, async () => {
  // The file copied in before start is what keeps the exited container's files with kubedock.
  const oneShot = new GenericContainer("busybox:1.36")
    .withCopyContentToContainer([{ content: "suite node\n", target: "/input/suite.txt" }])
    .withCommand(["sh", "-c", "mkdir /reports; cat /input/suite.txt > /reports/report.txt; echo passed >> /reports/report.txt"])
    .withWaitStrategy(Wait.forOneShotStartup());
  await withContainer(oneShot, async (container) => {
    const client = await getContainerRuntimeClient();
    const { State } = await client.container.getById(container.getId()).inspect();
    assert.deepEqual([State.Status, State.ExitCode], ["exited", 0]);
    const files = untar(await readAll(await container.copyArchiveFromContainer("/reports/report.txt")));
    assert.equal(files.get("report.txt").toString(), "suite node\npassed\n");
  });
});

test("copy a file into and out of a running no-shell container", TIMEOUT, async () => {
  await withContainer(new GenericContainer("kubedock/noshell:1"), async (container) => {
    await container.copyContentToContainer([{ content: "into a running no-shell container\n", target: "/data/in.txt" }]);
    const copied = untar(await readAll(await container.copyArchiveFromContainer("/data/in.txt")));
    assert.equal(copied.get("in.txt").toString(), "into a running no-shell container\n");
    const hello = untar(await readAll(await container.copyArchiveFromContainer("/data/hello.txt")));
    assert.equal(hello.get("hello.txt").toString(), "hello from the no-shell image\n");
  });
});

test("a named volume written by one container and read by the next", TIMEOUT, async () => {
  // The library has no named-volume option; a bind whose source is a name is a volume to Docker.
  const volume = [{ source: `kubedock-eco-node-${Date.now()}`, target: "/vol" }];
  try {
    const writer = new GenericContainer("busybox:1.36").withBindMounts(volume)
      .withCommand(["sh", "-c", "echo from the writer > /vol/note.txt"])
      .withWaitStrategy(Wait.forOneShotStartup());
    await withContainer(writer, async () => {});
    const reader = new GenericContainer("busybox:1.36").withBindMounts(volume).withCommand(["sleep", "300"]);
    await withContainer(reader, async (container) => {
      const note = await container.exec(["cat", "/vol/note.txt"]);
      assert.deepEqual([note.exitCode, note.stdout], [0, "from the writer\n"]);
    });
  } finally {
    const client = await getContainerRuntimeClient();
    await client.container.dockerode.getVolume(volume[0].source).remove();
  }
});

// The answer to one datagram sent to host:port and sent again each second until then: one sent
// before the server listens (with kubedock, before its relay joins the pod) is lost.
async function echoed(host, port, payload) {
  const socket = dgram.createSocket("udp4");
  try {
    const answer = new Promise((resolve) => socket.once("message", resolve));
    for (const deadline = Date.now() + 90_000; Date.now() < deadline;) {
      socket.send(payload, port, host);
      const received = await Promise.race([answer, sleep(1000)]);
      if (received) return received.toString();
    }
    throw new Error(`no echo from ${host}:${port}`);
  } finally {
    socket.close();
  }
}

test("a published UDP port", TIMEOUT, async () => {
  // kubedock's own image: its toolbox has the UDP echo server no other test image has.
  const echo = new GenericContainer(process.env.KUBEDOCK_IMAGE)
    .withCommand(["toolbox", "echo", "5353"]).withExposedPorts("5353/udp");
  await withContainer(echo, async (container) => {
    assert.equal(await echoed(container.getHost(), container.getMappedPort("5353/udp"), "over udp"), "over udp");
  });
});

test("exec as another user", TIMEOUT, async () => {
  const busybox = new GenericContainer("busybox:1.36").withCommand(["sleep", "300"]);
  await withContainer(busybox, async (container) => {
    const byId = await container.exec(["id", "-u"], { user: "1000" });
    assert.deepEqual([byId.exitCode, byId.stdout], [0, "1000\n"]);
    const byName = await container.exec(["id", "-un"], { user: "nobody" });
    assert.deepEqual([byName.exitCode, byName.stdout], [0, "nobody\n"]);
  });
});

test("signals sent to a container", TIMEOUT, async () => {
  const trapping = new GenericContainer("busybox:1.36")
    .withCommand(["sh", "-c", "trap 'echo got USR1' USR1; trap 'echo got TERM; exit 3' TERM; echo ready; while true; do sleep 0.1; done"])
    .withWaitStrategy(Wait.forLogMessage("ready"));
  await withContainer(trapping, async (container) => {
    const client = await getContainerRuntimeClient();
    const docker = client.container.getById(container.getId());
    const logged = async (line) => {
      for (const deadline = Date.now() + 60_000; Date.now() < deadline; await sleep(200)) {
        const logs = demultiplex(await docker.logs({ stdout: true, stderr: true, follow: false }));
        if (logs[1].includes(`${line}\n`)) return;
      }
      throw new Error(`no ${line} in the logs`);
    };
    await docker.kill({ signal: "SIGUSR1" });
    await logged("got USR1");
    assert.equal((await docker.inspect()).State.Running, true);
    await docker.kill({ signal: "TERM" });
    assert.equal((await docker.wait()).StatusCode, 3);
    await logged("got TERM");
  });
});
