// Testcontainers for Java against the Docker API in DOCKER_HOST (kubedock, or Docker for
// comparison), with the project's offline images (KUBEDOCK_IMAGE names kubedock's own). Run by
// tests/e2e/docker/test_ecosystem_clients.py.
package kubedock.ecosystem;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.net.DatagramPacket;
import java.net.DatagramSocket;
import java.net.InetSocketAddress;
import java.net.SocketTimeoutException;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.sql.Connection;
import java.sql.DriverManager;
import java.sql.ResultSet;
import java.time.Duration;
import java.util.Arrays;
import java.util.UUID;
import java.util.concurrent.TimeUnit;
import java.util.function.Consumer;
import com.github.dockerjava.api.command.CreateContainerCmd;
import com.github.dockerjava.api.model.Bind;
import com.github.dockerjava.api.model.ExposedPort;
import com.github.dockerjava.api.model.PortBinding;
import com.github.dockerjava.api.model.Ports;
import com.github.dockerjava.api.model.Volume;
import org.junit.jupiter.api.Test;
import org.testcontainers.DockerClientFactory;
import org.testcontainers.containers.Container.ExecResult;
import org.testcontainers.containers.ExecConfig;
import org.testcontainers.containers.GenericContainer;
import org.testcontainers.containers.Network;
import org.testcontainers.containers.output.OutputFrame.OutputType;
import org.testcontainers.containers.output.WaitingConsumer;
import org.testcontainers.containers.startupcheck.OneShotStartupCheckStrategy;
import org.testcontainers.containers.wait.strategy.Wait;
import org.testcontainers.images.builder.ImageFromDockerfile;
import org.testcontainers.images.builder.Transferable;
import org.testcontainers.postgresql.PostgreSQLContainer;

class ContainersTest {
    private static final Duration STARTUP = Duration.ofMinutes(3);

    private static GenericContainer<?> busybox() {
        return new GenericContainer<>("busybox:1.36").withCommand("sleep", "300");
    }

    @Test
    void exposedPortWithPortWait() throws Exception {
        try (GenericContainer<?> nginx = new GenericContainer<>("nginx:1.27").withExposedPorts(80)
                .waitingFor(Wait.forListeningPort().withStartupTimeout(STARTUP))) {
            nginx.start();
            URI uri = URI.create("http://" + nginx.getHost() + ":" + nginx.getMappedPort(80) + "/");
            HttpResponse<String> answer = HttpClient.newHttpClient()
                    .send(HttpRequest.newBuilder(uri).build(), HttpResponse.BodyHandlers.ofString());
            assertEquals(200, answer.statusCode());
            assertTrue(answer.body().toLowerCase().contains("nginx"), answer.body());
        }
    }

    @Test
    void exposedPortWithLogWait() throws Exception {
        try (GenericContainer<?> redis = new GenericContainer<>("redis:7").withExposedPorts(6379)
                .waitingFor(Wait.forLogMessage(".*Ready to accept connections.*\\n", 1)
                        .withStartupTimeout(STARTUP))) {
            redis.start();
            ExecResult ping = redis.execInContainer("redis-cli", "ping");
            assertEquals(0, ping.getExitCode());
            assertEquals("PONG", ping.getStdout().trim());
            assertTrue(redis.getMappedPort(6379) > 0);
        }
    }

    @Test
    void exec() throws Exception {
        try (GenericContainer<?> container = busybox()) {
            container.start();
            ExecResult result = container.execInContainer("sh", "-c", "echo out; echo err >&2; exit 3");
            assertEquals(3, result.getExitCode());
            assertEquals("out\n", result.getStdout());
            assertEquals("err\n", result.getStderr());
            // Docker 20.10 (the reference engine) answers 126 too.
            ExecResult missing = container.execInContainer("no-such-program");
            assertEquals(126, missing.getExitCode());
        }
    }

    @Test
    void copyInAndOut() throws Exception {
        try (GenericContainer<?> container = busybox()
                .withCopyToContainer(Transferable.of("before start\n"), "/data/before.txt")) {
            container.start();
            container.copyFileToContainer(Transferable.of("after start\n", 0640), "/data/after.txt");
            ExecResult listing = container.execInContainer(
                    "sh", "-c", "cat /data/before.txt /data/after.txt; stat -c %a /data/after.txt");
            assertEquals("before start\nafter start\n640\n", listing.getStdout());
            String copied = container.copyFileFromContainer("/data/after.txt",
                    in -> new String(in.readAllBytes(), StandardCharsets.UTF_8));
            assertEquals("after start\n", copied);
        }
    }

    @Test
    void networkAliasReachesAnotherContainer() throws Exception {
        try (Network network = Network.newNetwork();
                GenericContainer<?> web = new GenericContainer<>("nginx:1.27").withNetwork(network)
                        .withNetworkAliases("web").withExposedPorts(80)
                        .waitingFor(Wait.forListeningPort().withStartupTimeout(STARTUP));
                GenericContainer<?> client = busybox().withNetwork(network)) {
            web.start();
            client.start();
            ExecResult result = client.execInContainer("wget", "-q", "-O", "-", "http://web/");
            assertEquals(0, result.getExitCode(), result.getStderr());
            assertTrue(result.getStdout().toLowerCase().contains("nginx"), result.getStdout());
        }
    }

    @Test
    void oneShotContainerThatSucceeds() {
        try (GenericContainer<?> container = new GenericContainer<>("busybox:1.36").withCommand("true")
                .withStartupCheckStrategy(new OneShotStartupCheckStrategy().withTimeout(STARTUP))) {
            container.start();
        }
    }

    @Test
    void exitCodeAndLogsOfAOneShotContainer() {
        // Running for a moment: start() fails a container that has already exited non-zero.
        try (GenericContainer<?> container = new GenericContainer<>("busybox:1.36")
                .withCommand("sh", "-c", "echo to-stdout; echo to-stderr >&2; sleep 2; exit 7")
                .waitingFor(Wait.forLogMessage(".*to-stderr.*", 1).withStartupTimeout(STARTUP))) {
            container.start();
            Long exitCode = container.getDockerClient().waitContainerCmd(container.getContainerId())
                    .start().awaitStatusCode().longValue();
            assertEquals(7L, exitCode);
            assertEquals(7L, container.getDockerClient().inspectContainerCmd(container.getContainerId())
                    .exec().getState().getExitCodeLong());
            assertEquals("to-stdout\n", container.getLogs(OutputType.STDOUT));
            assertEquals("to-stderr\n", container.getLogs(OutputType.STDERR));
        }
    }

    @Test
    void imageFromDockerfile() throws Exception {
        ImageFromDockerfile image = new ImageFromDockerfile()
                .withFileFromString("Dockerfile", String.join("\n", "FROM busybox:1.36", "ARG GREETING",
                        "COPY greet.sh /app/", "RUN echo \"built with $GREETING\" > /app/built.txt",
                        "CMD [\"sh\", \"-c\", \"sh /app/greet.sh; exec sleep 300\"]", ""))
                .withFileFromString("greet.sh", "echo greetings from java\n")
                .withBuildArg("GREETING", "a build arg");
        try (GenericContainer<?> container = new GenericContainer<>(image)
                .waitingFor(Wait.forLogMessage(".*greetings from java.*\\n", 1).withStartupTimeout(STARTUP))) {
            container.start();
            ExecResult built = container.execInContainer("cat", "/app/built.txt");
            assertEquals(0, built.getExitCode(), built.getStderr());
            assertEquals("built with a build arg\n", built.getStdout());
        }
    }

    @Test
    void postgresModule() throws Exception {
        try (PostgreSQLContainer postgres = new PostgreSQLContainer("postgres:16")) {
            postgres.start();
            try (Connection connection = DriverManager.getConnection(
                            postgres.getJdbcUrl(), postgres.getUsername(), postgres.getPassword());
                    ResultSet result = connection.createStatement().executeQuery("select 40 + 2")) {
                assertTrue(result.next());
                assertEquals(42, result.getInt(1));
            }
        }
    }

    private static String readFile(GenericContainer<?> container, String path) {
        return container.copyFileFromContainer(path, in -> new String(in.readAllBytes(), StandardCharsets.UTF_8));
    }

    @Test
    void reportOfAnExitedContainer() {
        // The file copied in before start is what keeps the exited container's files with kubedock.
        try (GenericContainer<?> container = new GenericContainer<>("busybox:1.36")
                .withCopyToContainer(Transferable.of("suite java\n"), "/input/suite.txt")
                .withCommand("sh", "-c",
                        "mkdir /reports; cat /input/suite.txt > /reports/report.txt; echo passed >> /reports/report.txt")
                .withStartupCheckStrategy(new OneShotStartupCheckStrategy().withTimeout(STARTUP))) {
            container.start();
            assertEquals("exited", container.getCurrentContainerInfo().getState().getStatus());
            assertEquals("suite java\npassed\n", readFile(container, "/reports/report.txt"));
        }
    }

    @Test
    void copyInAndOutOfARunningNoShellContainer() {
        try (GenericContainer<?> container = new GenericContainer<>("kubedock/noshell:1")) {
            container.start();
            container.copyFileToContainer(Transferable.of("into a running no-shell container\n"), "/data/in.txt");
            assertEquals("into a running no-shell container\n", readFile(container, "/data/in.txt"));
            assertEquals("hello from the no-shell image\n", readFile(container, "/data/hello.txt"));
        }
    }

    private static Consumer<CreateContainerCmd> volumeAt(String path, String volume) {
        return cmd -> cmd.getHostConfig().withBinds(new Bind(volume, new Volume(path)));
    }

    @Test
    void namedVolumeFromOneContainerToTheNext() throws Exception {
        String name = "kubedock-eco-java-" + UUID.randomUUID().toString().substring(0, 8);
        try {
            try (GenericContainer<?> writer = new GenericContainer<>("busybox:1.36")
                    .withCreateContainerCmdModifier(volumeAt("/vol", name))
                    .withCommand("sh", "-c", "echo from the writer > /vol/note.txt")
                    .withStartupCheckStrategy(new OneShotStartupCheckStrategy().withTimeout(STARTUP))) {
                writer.start();
            }
            try (GenericContainer<?> reader = busybox()
                    .withCreateContainerCmdModifier(volumeAt("/vol", name))) {
                reader.start();
                ExecResult note = reader.execInContainer("cat", "/vol/note.txt");
                assertEquals(0, note.getExitCode(), note.getStderr());
                assertEquals("from the writer\n", note.getStdout());
            }
        } finally {
            DockerClientFactory.instance().client().removeVolumeCmd(name).exec();
        }
    }

    /** The answer to one datagram sent to address, sent again each second until then: one sent before the
     *  server listens (with kubedock, before its relay joins the pod) is lost. */
    private static String echoed(InetSocketAddress address, String payload) throws Exception {
        byte[] bytes = payload.getBytes(StandardCharsets.UTF_8);
        try (DatagramSocket socket = new DatagramSocket()) {
            socket.setSoTimeout(1000);
            DatagramPacket answer = new DatagramPacket(new byte[100], 100);
            for (long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(90); ; ) {
                socket.send(new DatagramPacket(bytes, bytes.length, address));
                try {
                    socket.receive(answer);
                    return new String(answer.getData(), 0, answer.getLength(), StandardCharsets.UTF_8);
                } catch (SocketTimeoutException e) {
                    if (System.nanoTime() > deadline) {
                        throw e;
                    }
                }
            }
        }
    }

    @Test
    void publishedUdpPort() throws Exception {
        // The library publishes TCP ports only: the UDP one goes in through the create command.
        ExposedPort udp = ExposedPort.udp(5353);
        // kubedock's own image: its toolbox has the UDP echo server no other test image has.
        try (GenericContainer<?> echo = new GenericContainer<>(System.getenv("KUBEDOCK_IMAGE"))
                .withCommand("toolbox", "echo", "5353")
                .withCreateContainerCmdModifier(cmd -> {
                    cmd.withExposedPorts(udp);
                    cmd.getHostConfig().withPortBindings(new PortBinding(Ports.Binding.empty(), udp));
                })) {
            echo.start();
            Ports.Binding[] bindings = echo.getContainerInfo().getNetworkSettings().getPorts().getBindings().get(udp);
            assertTrue(bindings != null && bindings.length > 0, Arrays.toString(bindings));
            int port = Integer.parseInt(bindings[0].getHostPortSpec());
            assertEquals("over udp", echoed(new InetSocketAddress(echo.getHost(), port), "over udp"));
        }
    }

    private static ExecConfig asUser(String user, String... command) {
        return ExecConfig.builder().user(user).command(command).build();
    }

    @Test
    void execAsAnotherUser() throws Exception {
        try (GenericContainer<?> container = busybox()) {
            container.start();
            ExecResult byId = container.execInContainer(asUser("1000", "id", "-u"));
            assertEquals(0, byId.getExitCode(), byId.getStderr());
            assertEquals("1000\n", byId.getStdout());
            ExecResult byName = container.execInContainer(asUser("nobody", "id", "-un"));
            assertEquals(0, byName.getExitCode(), byName.getStderr());
            assertEquals("nobody\n", byName.getStdout());
        }
    }

    @Test
    void signals() throws Exception {
        try (GenericContainer<?> container = new GenericContainer<>("busybox:1.36")
                .withCommand("sh", "-c", "trap 'echo got USR1' USR1; trap 'echo got TERM; exit 3' TERM; "
                        + "echo ready; while true; do sleep 0.1; done")
                .waitingFor(Wait.forLogMessage("ready\n", 1).withStartupTimeout(STARTUP))) {
            container.start();
            WaitingConsumer output = new WaitingConsumer();
            container.followOutput(output, OutputType.STDOUT);
            container.getDockerClient().killContainerCmd(container.getContainerId()).withSignal("SIGUSR1").exec();
            output.waitUntil(frame -> frame.getUtf8String().contains("got USR1"), 60, TimeUnit.SECONDS);
            assertTrue(container.isRunning());
            container.getDockerClient().killContainerCmd(container.getContainerId()).withSignal("TERM").exec();
            assertEquals(3, container.getDockerClient().waitContainerCmd(container.getContainerId())
                    .start().awaitStatusCode().intValue());
            assertTrue(container.getLogs(OutputType.STDOUT).contains("got TERM\n"));
        }
    }
}
