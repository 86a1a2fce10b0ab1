// Testcontainers for Go against the Docker API in DOCKER_HOST (kubedock, or Docker for
// comparison), with the project's offline images (KUBEDOCK_IMAGE names kubedock's own). Run by
// tests/e2e/docker/test_ecosystem_clients.py.
package ecosystem

import (
	"bytes"
	"context"
	"database/sql"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/containerd/errdefs"
	_ "github.com/lib/pq"
	"github.com/moby/moby/client"
	"github.com/testcontainers/testcontainers-go"
	tcexec "github.com/testcontainers/testcontainers-go/exec"
	"github.com/testcontainers/testcontainers-go/modules/postgres"
	"github.com/testcontainers/testcontainers-go/network"
	"github.com/testcontainers/testcontainers-go/wait"
)

const startupTimeout = 3 * time.Minute

func run(t *testing.T, image string, opts ...testcontainers.ContainerCustomizer) *testcontainers.DockerContainer {
	t.Helper()
	ctr, err := testcontainers.Run(context.Background(), image, opts...)
	testcontainers.CleanupContainer(t, ctr)
	if err != nil {
		t.Fatalf("run %s: %v", image, err)
	}
	return ctr
}

// execute runs cmd in ctr and returns its exit code and output: all of stdout, then all of stderr.
func execute(t *testing.T, ctr testcontainers.Container, cmd []string, opts ...tcexec.ProcessOption) (int, string) {
	t.Helper()
	code, reader, err := ctr.Exec(context.Background(), cmd, append(opts, tcexec.Multiplexed())...)
	if err != nil {
		t.Fatalf("exec %v: %v", cmd, err)
	}
	output, err := io.ReadAll(reader)
	if err != nil {
		t.Fatalf("read exec output: %v", err)
	}
	return code, string(output)
}

func TestExposedPortWithPortWait(t *testing.T) {
	ctr := run(t, "nginx:1.27", testcontainers.WithExposedPorts("80/tcp"),
		testcontainers.WithWaitStrategy(wait.ForListeningPort("80/tcp").WithStartupTimeout(startupTimeout)))
	endpoint, err := ctr.PortEndpoint(context.Background(), "80/tcp", "http")
	if err != nil {
		t.Fatal(err)
	}
	answer, err := http.Get(endpoint + "/")
	if err != nil {
		t.Fatal(err)
	}
	defer answer.Body.Close()
	body, _ := io.ReadAll(answer.Body)
	if answer.StatusCode != 200 || !strings.Contains(strings.ToLower(string(body)), "nginx") {
		t.Fatalf("GET %s: %d %q", endpoint, answer.StatusCode, body)
	}
}

func TestExposedPortWithLogWait(t *testing.T) {
	ctr := run(t, "redis:7", testcontainers.WithExposedPorts("6379/tcp"),
		testcontainers.WithWaitStrategy(wait.ForLog("Ready to accept connections").WithStartupTimeout(startupTimeout)))
	code, output := execute(t, ctr, []string{"redis-cli", "ping"})
	if code != 0 || strings.TrimSpace(output) != "PONG" {
		t.Fatalf("redis-cli ping: %d %q", code, output)
	}
	if port, err := ctr.MappedPort(context.Background(), "6379/tcp"); err != nil || port.Num() == 0 {
		t.Fatalf("mapped port: %v %v", port, err)
	}
}

func TestExec(t *testing.T) {
	ctr := run(t, "busybox:1.36", testcontainers.WithCmd("sleep", "300"))
	// Demultiplexed, stderr comes after stdout although it was written first.
	code, output := execute(t, ctr, []string{"sh", "-c", "echo err >&2; sleep 0.2; echo out; exit 3"})
	if code != 3 || output != "out\nerr\n" {
		t.Fatalf("exec: %d %q", code, output)
	}
	code, output = execute(t, ctr, []string{"sh", "-c", "pwd; echo $A"},
		tcexec.WithWorkingDir("/etc"), tcexec.WithEnv([]string{"A=1"}))
	if code != 0 || output != "/etc\n1\n" {
		t.Fatalf("exec in /etc: %d %q", code, output)
	}
}

func TestCopyInAndOut(t *testing.T) {
	ctx := context.Background()
	ctr := run(t, "busybox:1.36", testcontainers.WithCmd("sleep", "300"),
		testcontainers.WithFiles(testcontainers.ContainerFile{
			Reader: strings.NewReader("before start\n"), ContainerFilePath: "/data/before.txt", FileMode: 0o644,
		}))
	if err := ctr.CopyToContainer(ctx, []byte("after start\n"), "/data/after.txt", 0o640); err != nil {
		t.Fatal(err)
	}
	code, output := execute(t, ctr, []string{"sh", "-c", "cat /data/before.txt /data/after.txt; stat -c %a /data/after.txt"})
	if code != 0 || output != "before start\nafter start\n640\n" {
		t.Fatalf("copied files: %d %q", code, output)
	}
	reader, err := ctr.CopyFileFromContainer(ctx, "/data/after.txt")
	if err != nil {
		t.Fatal(err)
	}
	defer reader.Close()
	if content, _ := io.ReadAll(reader); string(content) != "after start\n" {
		t.Fatalf("copied out: %q", content)
	}
}

func TestNetworkAlias(t *testing.T) {
	ctx := context.Background()
	net, err := network.New(ctx)
	if err != nil {
		t.Fatal(err)
	}
	testcontainers.CleanupNetwork(t, net)
	run(t, "nginx:1.27", network.WithNetwork([]string{"web"}, net), testcontainers.WithExposedPorts("80/tcp"),
		testcontainers.WithWaitStrategy(wait.ForListeningPort("80/tcp").WithStartupTimeout(startupTimeout)))
	client := run(t, "busybox:1.36", network.WithNetwork(nil, net), testcontainers.WithCmd("sleep", "300"))
	code, output := execute(t, client, []string{"wget", "-q", "-O", "-", "http://web/"})
	if code != 0 || !strings.Contains(strings.ToLower(output), "nginx") {
		t.Fatalf("wget http://web/: %d %q", code, output)
	}
}

// logSink keeps what a log consumer received, by stream.
type logSink struct {
	mutex   sync.Mutex
	streams map[string]*bytes.Buffer
}

func (s *logSink) Accept(log testcontainers.Log) {
	s.mutex.Lock()
	defer s.mutex.Unlock()
	if s.streams[log.LogType] == nil {
		s.streams[log.LogType] = &bytes.Buffer{}
	}
	s.streams[log.LogType].Write(log.Content)
}

func (s *logSink) text(stream string) string {
	s.mutex.Lock()
	defer s.mutex.Unlock()
	if s.streams[stream] == nil {
		return ""
	}
	return s.streams[stream].String()
}

func TestOneShotThatSucceeds(t *testing.T) {
	ctr := run(t, "busybox:1.36", testcontainers.WithCmd("true"),
		testcontainers.WithWaitStrategy(wait.ForExit().WithExitTimeout(startupTimeout)))
	if state, err := ctr.State(context.Background()); err != nil || state.ExitCode != 0 {
		t.Fatalf("state: %+v %v", state, err)
	}
}

func TestOneShotExitCodeAndLogs(t *testing.T) {
	sink := &logSink{streams: map[string]*bytes.Buffer{}}
	ctr := run(t, "busybox:1.36", testcontainers.WithCmd("sh", "-c", "echo to-stdout; echo to-stderr >&2; exit 7"),
		testcontainers.WithLogConsumers(sink),
		testcontainers.WithWaitStrategy(wait.ForExit().WithExitTimeout(startupTimeout)))
	state, err := ctr.State(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if state.Status != "exited" || state.ExitCode != 7 {
		t.Fatalf("state: %s %d", state.Status, state.ExitCode)
	}
	reader, err := ctr.Logs(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	merged, _ := io.ReadAll(reader)
	if !bytes.Contains(merged, []byte("to-stdout\n")) || !bytes.Contains(merged, []byte("to-stderr\n")) {
		t.Fatalf("logs: %q", merged)
	}
	deadline := time.Now().Add(30 * time.Second)
	for sink.text(testcontainers.StderrLog) == "" && time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
	}
	if out, errs := sink.text(testcontainers.StdoutLog), sink.text(testcontainers.StderrLog); out != "to-stdout\n" || errs != "to-stderr\n" {
		t.Fatalf("log consumer: stdout %q, stderr %q", out, errs)
	}
}

func TestPostgresModule(t *testing.T) {
	ctx := context.Background()
	ctr, err := postgres.Run(ctx, "postgres:16", postgres.BasicWaitStrategies())
	testcontainers.CleanupContainer(t, ctr)
	if err != nil {
		t.Fatal(err)
	}
	db, err := sql.Open("postgres", ctr.MustConnectionString(ctx, "sslmode=disable"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var answer int
	if err := db.QueryRowContext(ctx, "select 40 + 2").Scan(&answer); err != nil || answer != 42 {
		t.Fatal(fmt.Errorf("select: %d %w", answer, err))
	}
}

func TestFromDockerfile(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	files := map[string]string{
		"Dockerfile": "FROM busybox:1.36\nARG GREETING\nCOPY greet.sh /app/\n" +
			"RUN echo \"built with $GREETING\" > /app/built.txt\n" +
			"CMD [\"sh\", \"-c\", \"sh /app/greet.sh; exec sleep 300\"]\n",
		"greet.sh": "echo greetings from go\n",
	}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	greeting := "a build arg"
	var buildLog bytes.Buffer
	ctr := run(t, "", testcontainers.WithDockerfile(testcontainers.FromDockerfile{
		Context: dir, BuildArgs: map[string]*string{"GREETING": &greeting}, BuildLogWriter: &buildLog,
	}), testcontainers.WithWaitStrategy(wait.ForLog("greetings from go").WithStartupTimeout(startupTimeout)))
	if !strings.Contains(buildLog.String(), "Successfully built") {
		t.Fatalf("build log: %q", buildLog.String())
	}
	code, output := execute(t, ctr, []string{"cat", "/app/built.txt"})
	if code != 0 || output != "built with a build arg\n" {
		t.Fatalf("built file: %d %q", code, output)
	}
	// Terminating the container removes the image built for it.
	image := ctr.Image
	if err := ctr.Terminate(ctx, testcontainers.StopTimeout(time.Second)); err != nil {
		t.Fatal(err)
	}
	docker, err := testcontainers.NewDockerClientWithOpts(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer docker.Close()
	if _, err := docker.ImageInspect(ctx, image); !errdefs.IsNotFound(err) {
		t.Fatalf("image %s after terminate: %v", image, err)
	}
}

// readFile copies one file out of ctr.
func readFile(t *testing.T, ctr testcontainers.Container, path string) string {
	t.Helper()
	reader, err := ctr.CopyFileFromContainer(context.Background(), path)
	if err != nil {
		t.Fatalf("copy %s out: %v", path, err)
	}
	defer reader.Close()
	content, err := io.ReadAll(reader)
	if err != nil {
		t.Fatalf("read %s: %v", path, err)
	}
	return string(content)
}

func TestReportOfAnExitedContainer(t *testing.T) {
	// The file copied in before start is what keeps the exited container's files with kubedock.
	ctr := run(t, "busybox:1.36",
		testcontainers.WithFiles(testcontainers.ContainerFile{
			Reader: strings.NewReader("suite go\n"), ContainerFilePath: "/input/suite.txt", FileMode: 0o644,
		}),
		testcontainers.WithCmd("sh", "-c", "mkdir /reports; cat /input/suite.txt > /reports/report.txt; echo passed >> /reports/report.txt"),
		testcontainers.WithWaitStrategy(wait.ForExit().WithExitTimeout(startupTimeout)))
	if state, err := ctr.State(context.Background()); err != nil || state.Status != "exited" || state.ExitCode != 0 {
		t.Fatalf("state: %+v %v", state, err)
	}
	if report := readFile(t, ctr, "/reports/report.txt"); report != "suite go\npassed\n" {
		t.Fatalf("report: %q", report)
	}
}

func TestCopyInAndOutOfARunningNoShellContainer(t *testing.T) {
	ctr := run(t, "kubedock/noshell:1")
	if err := ctr.CopyToContainer(context.Background(), []byte("into a running no-shell container\n"), "/data/in.txt", 0o640); err != nil {
		t.Fatal(err)
	}
	if copied := readFile(t, ctr, "/data/in.txt"); copied != "into a running no-shell container\n" {
		t.Fatalf("copied out: %q", copied)
	}
	if hello := readFile(t, ctr, "/data/hello.txt"); hello != "hello from the no-shell image\n" {
		t.Fatalf("image's file: %q", hello)
	}
}

func TestNamedVolumeFromOneContainerToTheNext(t *testing.T) {
	ctx := context.Background()
	name := fmt.Sprintf("kubedock-eco-go-%d", time.Now().UnixNano())
	docker, err := testcontainers.NewDockerClientWithOpts(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// Registered first, so it runs after the containers' cleanups.
	t.Cleanup(func() {
		defer docker.Close()
		if _, err := docker.VolumeRemove(ctx, name, client.VolumeRemoveOptions{Force: true}); err != nil {
			t.Errorf("remove volume %s: %v", name, err)
		}
	})
	volume := testcontainers.WithMounts(testcontainers.VolumeMount(name, "/vol"))
	writer := run(t, "busybox:1.36", volume, testcontainers.WithCmd("sh", "-c", "echo from the writer > /vol/note.txt"),
		testcontainers.WithWaitStrategy(wait.ForExit().WithExitTimeout(startupTimeout)))
	if state, err := writer.State(ctx); err != nil || state.ExitCode != 0 {
		t.Fatalf("writer: %+v %v", state, err)
	}
	reader := run(t, "busybox:1.36", volume, testcontainers.WithCmd("sleep", "300"))
	code, output := execute(t, reader, []string{"cat", "/vol/note.txt"})
	if code != 0 || output != "from the writer\n" {
		t.Fatalf("reader: %d %q", code, output)
	}
}

func TestUDPPort(t *testing.T) {
	ctx := context.Background()
	// kubedock's own image: its toolbox has the UDP echo server no other test image has.
	ctr, err := testcontainers.Run(ctx, os.Getenv("KUBEDOCK_IMAGE"),
		testcontainers.WithCmd("toolbox", "echo", "5353"), testcontainers.WithExposedPorts("5353/udp"))
	// The echo server ignores SIGTERM, which a stop would wait out.
	testcontainers.CleanupContainer(t, ctr, testcontainers.StopTimeout(0))
	if err != nil {
		t.Fatal(err)
	}
	host, err := ctr.Host(ctx)
	if err != nil {
		t.Fatal(err)
	}
	port, err := ctr.MappedPort(ctx, "5353/udp")
	if err != nil {
		t.Fatal(err)
	}
	server, err := net.ResolveUDPAddr("udp4", net.JoinHostPort(host, strconv.Itoa(int(port.Num()))))
	if err != nil {
		t.Fatal(err)
	}
	// Not connected: an ICMP error for a datagram sent too early does not fail the next one.
	conn, err := net.ListenUDP("udp4", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	// A datagram sent before the server listens (with kubedock, before its relay joins the pod)
	// is lost: sent again each second.
	deadline := time.Now().Add(90 * time.Second)
	answer := make([]byte, 100)
	for {
		if _, err := conn.WriteToUDP([]byte("over udp"), server); err != nil {
			t.Fatal(err)
		}
		_ = conn.SetReadDeadline(time.Now().Add(time.Second))
		size, _, err := conn.ReadFromUDP(answer)
		if err == nil {
			if string(answer[:size]) != "over udp" {
				t.Fatalf("echo: %q", answer[:size])
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("no echo from %s: %v", server, err)
		}
	}
}

func TestExecAsAnotherUser(t *testing.T) {
	ctr := run(t, "busybox:1.36", testcontainers.WithCmd("sleep", "300"))
	code, output := execute(t, ctr, []string{"id", "-u"}, tcexec.WithUser("1000"))
	if code != 0 || output != "1000\n" {
		t.Fatalf("exec as 1000: %d %q", code, output)
	}
	code, output = execute(t, ctr, []string{"id", "-un"}, tcexec.WithUser("nobody"))
	if code != 0 || output != "nobody\n" {
		t.Fatalf("exec as nobody: %d %q", code, output)
	}
}

// awaitLog waits until the logs of ctr hold line.
func awaitLog(t *testing.T, ctr testcontainers.Container, line string) {
	t.Helper()
	deadline := time.Now().Add(startupTimeout)
	for {
		reader, err := ctr.Logs(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		logs, err := io.ReadAll(reader)
		reader.Close()
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(string(logs), line+"\n") {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("no %q in the logs: %q", line, logs)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func TestSignals(t *testing.T) {
	ctx := context.Background()
	ctr := run(t, "busybox:1.36", testcontainers.WithCmd("sh", "-c",
		"trap 'echo got USR1' USR1; trap 'echo got TERM; exit 3' TERM; echo ready; while true; do sleep 0.1; done"),
		testcontainers.WithWaitStrategy(wait.ForLog("ready").WithStartupTimeout(startupTimeout)))
	docker, err := testcontainers.NewDockerClientWithOpts(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer docker.Close()
	if _, err := docker.ContainerKill(ctx, ctr.GetContainerID(), client.ContainerKillOptions{Signal: "SIGUSR1"}); err != nil {
		t.Fatal(err)
	}
	awaitLog(t, ctr, "got USR1")
	if state, err := ctr.State(ctx); err != nil || !state.Running {
		t.Fatalf("after SIGUSR1: %+v %v", state, err)
	}
	if _, err := docker.ContainerKill(ctx, ctr.GetContainerID(), client.ContainerKillOptions{Signal: "TERM"}); err != nil {
		t.Fatal(err)
	}
	awaitLog(t, ctr, "got TERM")
	if err := wait.ForExit().WithExitTimeout(time.Minute).WaitUntilReady(ctx, ctr); err != nil {
		t.Fatal(err)
	}
	if state, err := ctr.State(ctx); err != nil || state.ExitCode != 3 {
		t.Fatalf("after SIGTERM: %+v %v", state, err)
	}
}
