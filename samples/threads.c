/* Threads with known names and known stack use, for `procmap PID --threads`.
 *
 *   threads [--solo]
 *
 * The main thread and each thread below recurse DEPTH frames, each with a
 * 64 KiB local array they touch, then block: the stack each uses is known
 * within a frame.  Each prints "thread NAME TID DEEPEST", DEEPEST the lowest
 * address of its deepest array (so used >= top of its stack - DEEPEST), then
 * the main thread prints "ready" and blocks reading stdin; at end of input
 * everything ends.
 *
 *   pm-deep      recurses 8 frames (512 KiB), blocks in a futex
 *   pm-idle      recurses 1 frame, blocks in a futex
 *   [bold]pm x   a name that is markup, with a space: printed as it is
 *   pm-altstack  blocks inside a signal handler running on a sigaltstack in
 *                .bss: its stack pointer is outside every stack
 *   main         (the program's name) recurses 4 frames
 *
 * --solo: the main thread alone (a single-threaded process).
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#define FRAME (64 << 10)

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cond = PTHREAD_COND_INITIALIZER;
static int started, done;
static char altstack[256 << 10];   /* .bss: classified as the program's, not a stack */

static void report(const char *name, const void *deepest)
{
    pthread_mutex_lock(&lock);
    printf("thread %s %ld %p\n", name, (long)syscall(SYS_gettid), deepest);
    fflush(stdout);
    started++;
    pthread_cond_broadcast(&cond);
    pthread_mutex_unlock(&lock);
}

static void wait_done(void)
{
    pthread_mutex_lock(&lock);
    while (!done)
        pthread_cond_wait(&cond, &lock);
    pthread_mutex_unlock(&lock);
}

/* Recurse `depth` frames of FRAME bytes each, then call `at_bottom`. */
static __attribute__((noinline)) long dive(int depth, const char *name, void (*at_bottom)(void))
{
    volatile char frame[FRAME];
    memset((char *)frame, depth, sizeof frame);
    if (depth > 1)
        return dive(depth - 1, name, at_bottom) + frame[depth];
    report(name, (const void *)frame);
    at_bottom();
    return frame[0];
}

struct job {
    const char *name;
    int depth;
};

static void *worker(void *arg)
{
    struct job *job = arg;
    pthread_setname_np(pthread_self(), job->name);
    dive(job->depth, job->name, wait_done);
    return NULL;
}

static void on_signal(int sig)
{
    (void)sig;
    volatile char here = 0;
    report("pm-altstack", (const void *)&here);
    wait_done();
}

static void *alt_worker(void *arg)
{
    (void)arg;
    stack_t ss = {.ss_sp = altstack, .ss_size = sizeof altstack, .ss_flags = 0};
    struct sigaction sa;
    pthread_setname_np(pthread_self(), "pm-altstack");
    sigaltstack(&ss, NULL);
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sa.sa_flags = SA_ONSTACK;
    sigaction(SIGUSR1, &sa, NULL);
    pthread_kill(pthread_self(), SIGUSR1);
    return NULL;
}

static void wait_stdin(void)
{
    char buf[64];
    printf("ready\n");
    fflush(stdout);
    while (read(0, buf, sizeof buf) > 0)
        ;
}

int main(int argc, char **argv)
{
    static struct job jobs[] = {{"pm-deep", 8}, {"pm-idle", 1}, {"[bold]pm x", 1}};
    pthread_t threads[4];
    int n = 0, solo = argc > 1 && strcmp(argv[1], "--solo") == 0;

    if (!solo) {
        for (size_t i = 0; i < sizeof jobs / sizeof jobs[0]; i++)
            pthread_create(&threads[n++], NULL, worker, &jobs[i]);
        pthread_create(&threads[n++], NULL, alt_worker, NULL);
        pthread_mutex_lock(&lock);
        while (started < n)
            pthread_cond_wait(&cond, &lock);
        pthread_mutex_unlock(&lock);
    }
    dive(4, "main", wait_stdin);
    pthread_mutex_lock(&lock);
    done = 1;
    pthread_cond_broadcast(&cond);
    pthread_mutex_unlock(&lock);
    for (int i = 0; i < n; i++)
        pthread_join(threads[i], NULL);
    return 0;
}
