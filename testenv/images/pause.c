/*
 * The Pod sandbox's first process (containerd's sandbox_image): it holds the
 * Pod's namespaces open and does nothing else. As PID 1 of the Pod it reaps
 * every orphan re-parented to it, and it exits 0 on SIGTERM or SIGINT so that
 * stopping a sandbox is quick and clean. Built with `gcc -static` so the image
 * holds this one file.
 */
#include <signal.h>
#include <stddef.h>
#include <sys/wait.h>

static void ignore(int sig) { (void)sig; }

int main(void) {
    sigset_t wanted;
    struct sigaction action = {0};
    int sig = 0;

    /* A handler, not SIG_DFL: the kernel drops signals that a namespace's
     * init has no handler for. They are blocked and taken with sigwait. */
    action.sa_handler = ignore;
    sigemptyset(&wanted);
    sigaddset(&wanted, SIGTERM);
    sigaddset(&wanted, SIGINT);
    sigaddset(&wanted, SIGCHLD);
    sigaction(SIGTERM, &action, NULL);
    sigaction(SIGINT, &action, NULL);
    sigaction(SIGCHLD, &action, NULL);
    sigprocmask(SIG_BLOCK, &wanted, NULL);
    for (;;) {
        if (sigwait(&wanted, &sig) != 0) {
            continue;
        }
        if (sig == SIGCHLD) {
            while (waitpid(-1, NULL, WNOHANG) > 0) {
            }
            continue;
        }
        return 0;
    }
}
