/* One way to die per verdict of `procmap run` and `procmap core`.
 *
 *   crash MODE
 *
 * Before it faults, each mode prints "addr 0x..." (the address it is about to
 * touch, or jump to) on stdout, flushed, so a test can check procmap's answer
 * against what the program did.  Pointers go through volatile variables so
 * the compiler cannot see the fault coming and replace it with a trap.
 */
#define _GNU_SOURCE
#include <assert.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

struct record {
    char name[0x100];
    long count; /* at offset 0x100: a small offset from null */
};

static int *volatile nowhere;                   /* NULL, as far as the compiler knows */
static struct record *volatile no_record;
static void (*volatile no_function)(void);
static volatile int zero;
static volatile long sink;

const char greeting[] = "read-only data";     /* .rodata */
const char *const table[] = {"one", "two"};   /* .data.rel.ro in a PIE: RELRO */
unsigned char code_in_data[16] = {0xc3};      /* .data: "ret" on x86-64 */

static void say(const void *addr)
{
    printf("addr %p\n", addr);
    fflush(stdout);
}

static long __attribute__((noinline)) recurse(long depth)
{
    volatile char frame[512];
    if (depth < 0) /* never: it keeps gcc's -Winfinite-recursion quiet */
        return 0;
    frame[0] = (char)depth;
    return recurse(depth + 1) + frame[0];     /* not a tail call: the frame stays */
}

static void *overflow_thread(void *arg)
{
    (void)arg;
    sink = recurse(0);
    return NULL;
}

static void *null_thread(void *arg)
{
    (void)arg;
    say(nowhere);
    sink = *nowhere;
    return NULL;
}

static void run_thread(void *(*body)(void *), size_t stack)
{
    pthread_attr_t attr;
    pthread_t t;
    pthread_attr_init(&attr);
    if (stack)
        pthread_attr_setstacksize(&attr, stack);
    pthread_create(&t, &attr, body, NULL);
    pthread_setname_np(t, "worker");
    pthread_join(t, NULL);
}

static void jump_to(void *where)
{
    say(where);
    ((void (*)(void))where)();
}

static void on_segv(int sig)
{
    (void)sig;
    _exit(3);
}

static double spin(double seconds)
{
    /* About `seconds` of arithmetic, no system calls: the cost of running traced. */
    double x = 0;
    long n = (long)(seconds * 4e8);
    for (long i = 0; i < n; i++)
        x += (double)(i & 7) * 0.5;
    return x;
}

int main(int argc, char **argv)
{
    const char *mode = argc > 1 ? argv[1] : "ok";
    long page = sysconf(_SC_PAGESIZE);

    if (!strcmp(mode, "ok")) {
        puts("fine");
        return 0;
    }
    if (!strcmp(mode, "exit"))
        return argc > 2 ? atoi(argv[2]) : 1;
    if (!strcmp(mode, "spin")) {
        printf("%.0f\n", spin(argc > 2 ? atof(argv[2]) : 1.0));
        return 0;
    }
    if (!strcmp(mode, "null-read")) {
        say(nowhere);
        return *nowhere;
    }
    if (!strcmp(mode, "null-write")) {
        say(nowhere);
        *nowhere = 1;
        return 0;
    }
    if (!strcmp(mode, "null-offset")) {
        say(&no_record->count);
        return (int)no_record->count;
    }
    if (!strcmp(mode, "null-call")) {
        say(NULL);
        no_function();
        return 0;
    }
    if (!strcmp(mode, "stack-overflow")) {
        say(&mode);
        return (int)recurse(0);
    }
    if (!strcmp(mode, "thread-stack-overflow")) {
        run_thread(overflow_thread, 256 * 1024);
        return 0;
    }
    if (!strcmp(mode, "thread-null")) {
        run_thread(null_thread, 0);
        return 0;
    }
    if (!strcmp(mode, "write-text")) {
        volatile char *p = (char *)(uintptr_t)&main;
        say((void *)p);
        *p = 0;
        return 0;
    }
    if (!strcmp(mode, "write-rodata")) {
        volatile char *p = (char *)(uintptr_t)greeting;
        say((void *)p);
        *p = 'R';
        return 0;
    }
    if (!strcmp(mode, "write-relro")) {
        const char *volatile *p = (const char *volatile *)(uintptr_t)&table[0];
        say((void *)p);
        *p = "three";
        return 0;
    }
    if (!strcmp(mode, "exec-heap")) {
        unsigned char *p = malloc(64);
        p[0] = 0xc3;
        jump_to(p);
        return 0;
    }
    if (!strcmp(mode, "exec-stack")) {
        unsigned char local[16] = {0xc3};
        jump_to(local);
        return 0;
    }
    if (!strcmp(mode, "exec-data")) {
        jump_to(code_in_data);
        return 0;
    }
    if (!strcmp(mode, "kernel-address")) {
        volatile long *p = (long *)(uintptr_t)0xffff888000000000ull;
        say((void *)p);
        return (int)*p;
    }
    if (!strcmp(mode, "non-canonical")) {
        volatile long *p = (long *)(uintptr_t)0x8000000000000000ull;
        say((void *)p);
        return (int)*p;
    }
    if (!strcmp(mode, "unmapped")) {
        volatile char *p = mmap(NULL, page, PROT_READ | PROT_WRITE,
                                MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        p[0] = 1;
        munmap((void *)p, page);
        say((void *)p);
        return p[0];
    }
    if (!strcmp(mode, "no-access")) {
        volatile char *p = mmap(NULL, page, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        say((void *)p);
        return p[0];
    }
    if (!strcmp(mode, "beyond-eof")) {
        char path[] = "/tmp/procmap-crash-XXXXXX";
        int fd = mkstemp(path);
        if (fd < 0 || write(fd, "short file\n", 11) != 11)
            return 99;
        volatile char *p = mmap(NULL, 2 * page, PROT_READ, MAP_PRIVATE, fd, 0);
        unlink(path);
        say((void *)(p + page));
        return p[page];
    }
    if (!strcmp(mode, "abort"))
        abort();
    if (!strcmp(mode, "assert")) {
        assert(zero == 1);
        return 0;
    }
    if (!strcmp(mode, "double-free")) {
        char *volatile p = malloc(32);
        say(p);
        free(p);
        free(p);
        return 0;
    }
    if (!strcmp(mode, "use-after-free")) {
        /* Wrong, and silent: the freed block is still mapped heap memory. */
        char *volatile p = malloc(64);
        free(p);
        say(p);
        p[8] = 'x';
        sink = p[8];
        return 0;
    }
    if (!strcmp(mode, "divide-by-zero")) {
        volatile int n = 1000; /* not 1 / x, which gcc computes without dividing */
        return n / zero;
    }
    if (!strcmp(mode, "illegal")) {
        __builtin_trap();
    }
    if (!strcmp(mode, "breakpoint")) {
#if defined(__x86_64__) || defined(__i386__)
        __asm__ volatile("int3");
#elif defined(__aarch64__)
        __asm__ volatile("brk #0");
#endif
        return 0;
    }
    if (!strcmp(mode, "handled")) {
        signal(SIGSEGV, on_segv);
        say(nowhere);
        return *nowhere;
    }
    if (!strcmp(mode, "terminate")) {
        raise(SIGTERM);
        return 0;
    }
    fprintf(stderr, "crash: unknown mode %s\n", mode);
    return 2;
}
