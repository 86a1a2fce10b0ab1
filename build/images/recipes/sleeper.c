/* PID 1 that does nothing until asked to stop: the pod sandbox ("pause") and the no-shell image.
 * It reaps adopted children so zombies never pile up, and exits 0 on SIGINT or SIGTERM because
 * the kernel ignores unhandled signals sent to PID 1 (docker stop would otherwise wait 10 s). */
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

static void on_stop(int signo) {
    (void)signo;
    _exit(0);
}

static void on_child(int signo) {
    (void)signo;
    while (waitpid(-1, NULL, WNOHANG) > 0) {
    }
}

int main(void) {
    struct sigaction stop = {0};
    stop.sa_handler = on_stop;
    sigaction(SIGINT, &stop, NULL);
    sigaction(SIGTERM, &stop, NULL);

    struct sigaction child = {0};
    child.sa_handler = on_child;
    child.sa_flags = SA_NOCLDSTOP | SA_RESTART;
    sigaction(SIGCHLD, &child, NULL);

    for (;;) {
        pause();
    }
}
