/* kubedock's supervisor: PID 1 of a container whose files must outlive its process.
 *
 *   supervise run STATE_DIR PROGRAM [ARG...]   run the program as a child and supervise it
 *   supervise wait STATE_DIR                   block until the child has ended; print its record
 *   supervise kill SIGNAL                      send SIGNAL (a number) to the supervisor, which
 *                                              passes it on to the program
 *   supervise end STATE_DIR                    SIGKILL the program; print its record once written
 *   supervise install PATH                     copy this program to PATH (a file, made 0755)
 *   supervise idle                             do nothing until SIGTERM or SIGINT
 *
 * Kubernetes drops a container's root filesystem (and a finished pod's volumes) once its main
 * process ends, while Docker keeps them until the container is removed. `run` keeps the container
 * alive past its program: it starts the program with the same argv, environment, user, working
 * directory and standard streams, forwards every signal it can catch to it (those the program
 * handles, as the kernel does for a PID 1), reaps, and when the program has ended writes
 * STATE_DIR/exit (one JSON line: exit code as Docker gives it, the end time in nanoseconds
 * since the epoch, whether the kernel OOM-killed a process of the container) once the runtime
 * has taken what the program left in the pipes of its standard output and error (see
 * `drain_output`), and stays up,
 * holding the files, until SIGTERM or SIGINT, which end it at once with the program's exit code.
 * kubedock learns of the end through `wait`, which it runs by exec. While the program runs, `run`
 * keeps its pid in STATE_DIR/pid: the kernel drops a SIGKILL sent to a container's PID 1 from
 * inside, so `end` (Docker's kill) sends it to the program's process group itself.
 * `install` and `idle` deliver the program into pods whose init container does not (the
 * first container of the pod copies it into a shared volume in its postStart hook).
 *
 * Static, since the image it runs in may have no C library (or another one). */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define RECORD "exit"
#define PID "pid"
/* Where a container sees its OOM kill count: cgroup v2, else v1 (both "oom_kill N" lines). */
static const char *const OOM_COUNTERS[] = {
    "/sys/fs/cgroup/memory.events",
    "/sys/fs/cgroup/memory/memory.oom_control",
};
#define TERMINATION_LOG "/dev/termination-log"
/* How kubedock recognises, in the termination message, a program that never ran. */
#define NEVER_RAN "kubedock-supervise: "

static int usage(void) {
    fputs("usage: supervise run STATE_DIR PROGRAM [ARG...] | wait STATE_DIR | kill SIGNAL | "
          "end STATE_DIR | install PATH | idle\n", stderr);
    return 64;
}

/* The count of OOM kills in this container's cgroup; -1 where there is none. */
static long oom_kills(void) {
    FILE *events = NULL;
    for (size_t i = 0; events == NULL && i < sizeof OOM_COUNTERS / sizeof *OOM_COUNTERS; i++) {
        events = fopen(OOM_COUNTERS[i], "r");
    }
    if (events == NULL) {
        return -1;
    }
    char name[64];
    long value, found = -1;
    while (fscanf(events, "%63s %ld", name, &value) == 2) {
        if (strcmp(name, "oom_kill") == 0) {
            found = value;
        }
    }
    fclose(events);
    return found;
}

/* Write STATE_DIR/NAME whole or not at all: readers never see half of it. */
static int write_state(const char *state, const char *name, const char *text) {
    char path[4096], temporary[4096];
    snprintf(path, sizeof path, "%s/%s", state, name);
    snprintf(temporary, sizeof temporary, "%s/.%s", state, name);
    FILE *out = fopen(temporary, "w");
    if (out == NULL) {
        return -1;
    }
    fputs(text, out);
    if (fclose(out) != 0) {
        return -1;
    }
    return rename(temporary, path);
}

static int record_exit(const char *state, int code, const struct timespec *end,
                       int oom_killed) {
    char text[256];
    snprintf(text, sizeof text,
             "{\"exitCode\": %d, \"finishedAt\": %lld%09ld, \"oomKilled\": %s}\n", code,
             (long long)end->tv_sec, end->tv_nsec, oom_killed ? "true" : "false");
    return write_state(state, RECORD, text);
}

/* Until the runtime has read what is left in the pipes of the container's standard output and
 * error, at most DRAIN_SECONDS (a pipe nobody reads must not hold the end back). A client
 * reads the log as soon as the end is reported (docker-py's `run`: wait, then logs), and the
 * runtime copies a pipe into the log only when it gets round to it, which under load came
 * after the end was reported. On Linux FIONREAD tells the bytes in a pipe from either end. A
 * terminal tells nothing of the kind from the program's side (TIOCOUTQ of a pseudo-terminal
 * is 0): its writes block as soon as the runtime falls behind, so little can be left there. */
#define DRAIN_SECONDS 2
#define DRAIN_POLL_NANOSECONDS 1000000L
static void drain_output(void) {
    struct timespec deadline, pause = {0, DRAIN_POLL_NANOSECONDS};
    clock_gettime(CLOCK_MONOTONIC, &deadline);
    deadline.tv_sec += DRAIN_SECONDS;
    for (;;) {
        int pending = 0;
        for (int fd = STDOUT_FILENO; fd <= STDERR_FILENO; fd++) {
            struct stat stream;
            int bytes;
            if (fstat(fd, &stream) == 0 && S_ISFIFO(stream.st_mode) &&
                ioctl(fd, FIONREAD, &bytes) == 0) {
                pending += bytes;
            }
        }
        struct timespec now;
        clock_gettime(CLOCK_MONOTONIC, &now);
        if (pending == 0 || now.tv_sec > deadline.tv_sec ||
            (now.tv_sec == deadline.tv_sec && now.tv_nsec >= deadline.tv_nsec)) {
            return;
        }
        nanosleep(&pause, NULL);
    }
}

static void forget_pid(const char *state) {
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", state, PID);
    unlink(path);
}

/* Exec sessions and the program's children must not hold the container's streams open
 * once the program is gone. */
static void release_streams(void) {
    int null = open("/dev/null", O_RDWR);
    for (int fd = 0; fd <= 2; fd++) {
        if (null >= 0) {
            dup2(null, fd);
        } else {
            close(fd);
        }
    }
    if (null > 2) {
        close(null);
    }
}

/* Whether `pid` has a handler for `signo`. The kernel gives a container's PID 1 only the
 * signals it handles (SIGKILL aside), so that a program that ignores SIGTERM by default, such
 * as `sleep`, outlives `docker stop` until the kill; the program, no longer PID 1, gets the
 * same treatment from here. */
static int handles(pid_t pid, int signo) {
    char path[64], line[256];
    snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
    FILE *status = fopen(path, "r");
    if (status == NULL) {
        return 1;
    }
    unsigned long long caught = ~0ULL;
    while (fgets(line, sizeof line, status) != NULL) {
        if (sscanf(line, "SigCgt: %llx", &caught) == 1) {
            break;
        }
    }
    fclose(status);
    return signo < 1 || signo > 64 || (caught >> (signo - 1)) & 1;
}

/* A program that cannot be executed fails the container's start, as the runtime's own exec
 * failure would: the supervisor ends at once, and its termination message says so. */
static int never_ran(const char *program, int failure) {
    char message[4200];
    snprintf(message, sizeof message, "%sexec: \"%s\": %s", NEVER_RAN, program,
             failure == ENOENT && strchr(program, '/') == NULL
                 ? "executable file not found in $PATH" : strerror(failure));
    fprintf(stderr, "%s\n", message + strlen(NEVER_RAN));
    FILE *termination = fopen(TERMINATION_LOG, "w");
    if (termination != NULL) {
        fputs(message, termination);
        fclose(termination);
    }
    return failure == ENOENT ? 127 : 126;
}

static int run(const char *state, char **argv) {
    sigset_t all, previous;
    sigfillset(&all);
    sigprocmask(SIG_BLOCK, &all, &previous);
    long oom_before = oom_kills();
    int terminal = isatty(STDIN_FILENO);

    int exec_failed[2];
    if (pipe2(exec_failed, O_CLOEXEC) != 0) {
        perror("supervise: pipe");
        return 1;
    }
    pid_t child = fork();
    if (child < 0) {
        perror("supervise: fork");
        return 1;
    }
    if (child == 0) {
        close(exec_failed[0]);
        /* The program's own process group; on a terminal the foreground one, so that what the
         * terminal sends (^C, window size) reaches it once, not through the supervisor too.
         * Without a terminal, its own session as well, as a container's first process has
         * (`ps` says "Ss"); the terminal stays the supervisor's session's. */
        if (terminal) {
            setpgid(0, 0);
            signal(SIGTTOU, SIG_IGN);
            tcsetpgrp(STDIN_FILENO, getpid());
            signal(SIGTTOU, SIG_DFL);
        } else {
            setsid();
        }
        sigprocmask(SIG_SETMASK, &previous, NULL);
        execvp(argv[0], argv);
        int failure = errno;
        ssize_t ignored = write(exec_failed[1], &failure, sizeof failure);
        (void)ignored;
        _exit(127);
    }
    if (terminal) {
        setpgid(child, child);  /* either of the two may come first */
    }
    char pid_text[32];
    snprintf(pid_text, sizeof pid_text, "%d\n", (int)child);
    write_state(state, PID, pid_text);  /* without it `end` fails and kubedock deletes the pod */
    close(exec_failed[1]);
    int failure;
    if (read(exec_failed[0], &failure, sizeof failure) == sizeof failure) {
        return never_ran(argv[0], failure);
    }
    close(exec_failed[0]);

    int code = -1;
    for (;;) {
        siginfo_t info;
        int signo = sigwaitinfo(&all, &info);
        if (signo < 0) {
            continue;
        }
        if (signo == SIGCHLD) {
            int status;
            pid_t reaped;
            while ((reaped = waitpid(-1, &status, WNOHANG)) > 0) {
                if (reaped == child) {
                    code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
                }
            }
            if (code >= 0 && child > 0) {
                struct timespec end;
                clock_gettime(CLOCK_REALTIME, &end);
                /* A later `end` must not hit whatever takes the pid over. */
                forget_pid(state);
                /* As when a container's PID 1 ends: what the program left running goes too. */
                kill(-child, SIGKILL);
                long oom_after = oom_kills();
                drain_output();
                release_streams();
                if (record_exit(state, code, &end,
                                oom_before >= 0 && oom_after > oom_before) != 0) {
                    return code;  /* nobody could learn the exit: let the kubelet report it */
                }
                child = 0;
            }
        } else if (child > 0) {
            if (handles(child, signo)) {
                kill(child, signo);
            }
        } else if (signo == SIGTERM || signo == SIGINT) {
            return code;
        }
    }
}

/* A watch of what `run` writes into STATE_DIR; -1 where there is none (then poll). */
static int watch_state(const char *state) {
    int watch = inotify_init1(IN_CLOEXEC);
    if (watch >= 0) {
        inotify_add_watch(watch, state, IN_MOVED_TO | IN_CLOSE_WRITE);
    }
    return watch;
}

/* Until the next change in STATE_DIR (or a second, without a watch). */
static void await_change(int *watch) {
    if (*watch >= 0) {
        char events[4096];
        if (read(*watch, events, sizeof events) < 0 && errno != EINTR) {
            close(*watch);
            *watch = -1;
        }
    } else {
        sleep(1);
    }
}

static int wait_for_exit(const char *state) {
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", state, RECORD);
    int watch = watch_state(state);
    for (;;) {
        int record = open(path, O_RDONLY);
        if (record >= 0) {
            char text[512];
            ssize_t size = read(record, text, sizeof text);
            close(record);
            if (size > 0 && write(STDOUT_FILENO, text, (size_t)size) == size) {
                return 0;
            }
            return 1;
        }
        await_change(&watch);
    }
}

/* Docker's kill (SIGKILL) of a supervised container: the program and its process group go,
 * the supervisor records the end as any other, and the files stay. A program the supervisor
 * has not started yet is killed once it has. */
static int end_program(const char *state) {
    char path[4096], record[4096];
    snprintf(path, sizeof path, "%s/%s", state, PID);
    snprintf(record, sizeof record, "%s/%s", state, RECORD);
    int watch = watch_state(state);
    for (;;) {
        FILE *in = fopen(path, "r");
        int pid = 0;
        if (in != NULL) {
            if (fscanf(in, "%d", &pid) != 1) {
                pid = 0;
            }
            fclose(in);
        }
        if (pid > 0) {
            if (kill(-pid, SIGKILL) != 0 && errno != ESRCH) {
                perror("supervise end");
                return 1;
            }
            break;
        }
        if (access(record, F_OK) == 0) {
            break;
        }
        await_change(&watch);
    }
    if (watch >= 0) {
        close(watch);
    }
    return wait_for_exit(state);
}

static int install(const char *path) {
    int source = open("/proc/self/exe", O_RDONLY | O_CLOEXEC);
    char temporary[4096];
    snprintf(temporary, sizeof temporary, "%s.partial", path);
    int target = open(temporary, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0755);
    if (source < 0 || target < 0) {
        perror("supervise install");
        return 1;
    }
    char buffer[65536];
    ssize_t size;
    while ((size = read(source, buffer, sizeof buffer)) > 0) {
        if (write(target, buffer, (size_t)size) != size) {
            perror("supervise install");
            return 1;
        }
    }
    if (size < 0 || fchmod(target, 0755) != 0 || close(target) != 0 ||
        rename(temporary, path) != 0) {
        perror("supervise install");
        return 1;
    }
    return 0;
}

static int idle(void) {
    sigset_t all;
    sigfillset(&all);
    sigprocmask(SIG_BLOCK, &all, NULL);
    for (;;) {
        int signo = sigwaitinfo(&all, NULL);
        if (signo == SIGTERM || signo == SIGINT) {
            return 0;
        }
        while (waitpid(-1, NULL, WNOHANG) > 0) {
        }
    }
}

int main(int argc, char **argv) {
    if (argc >= 4 && strcmp(argv[1], "run") == 0) {
        return run(argv[2], argv + 3);
    }
    if (argc == 3 && strcmp(argv[1], "wait") == 0) {
        return wait_for_exit(argv[2]);
    }
    if (argc == 3 && strcmp(argv[1], "kill") == 0) {
        if (kill(1, atoi(argv[2])) != 0) {
            perror("supervise kill");
            return 1;
        }
        return 0;
    }
    if (argc == 3 && strcmp(argv[1], "end") == 0) {
        return end_program(argv[2]);
    }
    if (argc == 3 && strcmp(argv[1], "install") == 0) {
        return install(argv[2]);
    }
    if (argc == 2 && strcmp(argv[1], "idle") == 0) {
        return idle();
    }
    return usage();
}
