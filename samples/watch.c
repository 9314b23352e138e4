/* A program whose memory map changes one step at a time, for watching.
 *
 * Tests and the live demo watch this process's /proc/PID/maps while it runs.
 * Each command below makes exactly one kind of memory-map event happen and
 * prints the addresses involved, so a test can check the map against them.
 *
 * Protocol (stdout is line-buffered):
 *   At start it prints        ready pid=<pid>
 *   then reads one command per line from stdin, does it, and prints one line
 *   "done <command> key=value ...", or "error <message>" when the command is
 *   unknown or fails (and goes on reading).  At end of input it exits 0.
 *   Addresses are 0x-hex, sizes decimal bytes, every argument a decimal number.
 *
 *   heap-grow BYTES   malloc 16 KiB blocks totalling BYTES, touch and keep them
 *                     -> done heap-grow old_brk=0x.. new_brk=0x..
 *   heap-shrink       free every kept block, then malloc_trim, keeping 128 KiB
 *                     free at the top (the brk goes back near where it began)
 *                     -> done heap-shrink old_brk=0x.. new_brk=0x..
 *   stack-grow KIB    touch at least KIB KiB of main-thread stack below the
 *                     command's frame (the kernel never shrinks [stack] again)
 *                     -> done stack-grow lowest=0x..
 *   thread-start      start a thread (default attributes) that waits to be
 *                     stopped; stack is the lowest address of its usable stack
 *                     (just above the guard page), size its size in bytes
 *                     -> done thread-start tid=<tid> stack=0x.. size=<bytes>
 *   thread-stop       stop and join the most recently started running thread;
 *                     its stack is unmapped (see rerun_without_caches)
 *                     -> done thread-stop tid=<tid>
 *   mmap BYTES        map BYTES (rounded up to pages) anonymous read-write,
 *                     touch its first page; never merged with a neighbour
 *                     -> done mmap start=0x.. end=0x..
 *   munmap            unmap the most recent mapping from mmap
 *                     -> done munmap start=0x.. end=0x..
 *   mprotect          make the first page of the most recent mapping (at
 *                     least 2 pages) read-only, splitting it in two
 *                     -> done mprotect start=0x.. end=0x..
 *   unprotect         make that page read-write again: the halves merge
 *                     -> done unprotect start=0x.. end=0x..
 *   dlopen NAME       dlopen(NAME, RTLD_NOW) and keep the handle; base is the
 *                     lowest address the library is mapped at
 *                     -> done dlopen name=<NAME> base=0x..
 *   dlclose           dlclose the most recent handle
 *                     -> done dlclose name=<NAME>
 *   sleep MS          sleep MS milliseconds
 *                     -> done sleep
 *   exit CODE         exit(CODE) at once, printing nothing
 *
 * "watch demo [CYCLES]" instead runs a scripted cycle of those commands
 * forever (or CYCLES times), pausing 0.7 s between steps (env WATCH_PAUSE_MS
 * overrides the pause), printing the same lines, for a person to follow with
 *     samples/bin/watch demo & procmap $! --watch
 *
 * The program is not linked with -lm, so dlopen("libm.so.6") really maps it.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <inttypes.h>
#include <link.h>
#include <malloc.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#define HEAP_BLOCK   (16 * 1024)    /* below glibc's mmap threshold: brk heap */
/* heap-shrink leaves this much free at the heap's top, as glibc itself does
 * (its M_TOP_PAD): trimmed to nothing, the heap would have to grow again for
 * the few small blocks the next dlopen or thread-start mallocs, a second
 * event in those steps. */
#define HEAP_SPARE   (128 * 1024)
#define STACK_BLOCK  (16 * 1024)    /* one recursion frame's array */
#define MAX_THREADS  64
#define MAX_MAPS     64
#define MAX_LIBS     64

/* Kept state lives in static arrays, not on the heap, so that bookkeeping
 * does not itself move the brk between commands. */

/* heap-grow's blocks, chained through their own first bytes. */
struct block {
    struct block *next;
};
static struct block *blocks;

struct thread {
    pthread_t handle;
    pid_t tid;                  /* set by the thread itself */
    uintptr_t stack;            /* lowest address of its usable stack */
    size_t stack_size;
    int started;                /* the thread has filled in the facts above */
    int stop;                   /* told to return */
};
static struct thread threads[MAX_THREADS];
static int nthreads;
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cond = PTHREAD_COND_INITIALIZER;

struct mapping {
    char *start;
    size_t size;
};
static struct mapping maps[MAX_MAPS];
static int nmaps;

struct library {
    void *handle;
    char name[256];
};
static struct library libs[MAX_LIBS];
static int nlibs;

static size_t page_size;

static void fail(const char *command, const char *why)
{
    printf("error %s: %s\n", command, why);
}

/* A whole argument of decimal digits, no sign, no overflow. */
static int parse_number(const char *s, unsigned long long *out)
{
    char *end;

    if (s == NULL || *s < '0' || *s > '9')
        return -1;
    errno = 0;
    *out = strtoull(s, &end, 10);
    return (errno != 0 || *end != '\0') ? -1 : 0;
}

/* ---- heap ---------------------------------------------------------------- */

static void heap_grow(unsigned long long bytes)
{
    uintptr_t old_brk = (uintptr_t)sbrk(0);

    for (unsigned long long total = 0; total < bytes; total += HEAP_BLOCK) {
        struct block *b = malloc(HEAP_BLOCK);

        if (b == NULL) {
            fail("heap-grow", "malloc failed");
            return;
        }
        memset(b, 0xa5, HEAP_BLOCK);        /* touch every page */
        b->next = blocks;
        blocks = b;
    }
    printf("done heap-grow old_brk=0x%" PRIxPTR " new_brk=0x%" PRIxPTR "\n",
           old_brk, (uintptr_t)sbrk(0));
}

static void heap_shrink(void)
{
    uintptr_t old_brk = (uintptr_t)sbrk(0);

    while (blocks != NULL) {
        struct block *next = blocks->next;

        free(blocks);
        blocks = next;
    }
    malloc_trim(HEAP_SPARE);
    printf("done heap-shrink old_brk=0x%" PRIxPTR " new_brk=0x%" PRIxPTR "\n",
           old_brk, (uintptr_t)sbrk(0));
}

/* ---- main-thread stack ----------------------------------------------------- */

/* One frame per call, each with a 16 KiB volatile array touched page by page,
 * until a frame's array reaches down to target.  Returns the lowest address
 * touched.  The array is volatile and written again after the recursive call,
 * so -O1 can neither drop the array nor turn the recursion into a loop or a
 * tail call. */
static __attribute__((noinline)) uintptr_t grow_stack(uintptr_t target)
{
    volatile char block[STACK_BLOCK];
    uintptr_t lowest = (uintptr_t)&block[0];

    for (size_t i = sizeof block; i >= page_size; i -= page_size)
        block[i - 1] = 1;                   /* each page, top down as the stack grows */
    block[0] = 1;
    if (lowest > target)
        lowest = grow_stack(target);
    block[sizeof block / 2] = (char)lowest; /* uses the frame after the call */
    return lowest;
}

static void stack_grow(unsigned long long kib)
{
    char here;                              /* marks the starting frame */
    struct rlimit limit;
    uintptr_t lowest;

    /* Refuse to run into the stack limit (and its SIGSEGV) with a margin. */
    if (kib > (1ULL << 40) / 1024
        || (getrlimit(RLIMIT_STACK, &limit) == 0 && limit.rlim_cur != RLIM_INFINITY
            && kib * 1024 + 256 * 1024 > limit.rlim_cur)) {
        fail("stack-grow", "that would pass the stack size limit");
        return;
    }
    lowest = grow_stack((uintptr_t)&here - kib * 1024);
    printf("done stack-grow lowest=0x%" PRIxPTR "\n", lowest);
}

/* ---- threads ---------------------------------------------------------------- */

static void *thread_main(void *arg)
{
    struct thread *self = arg;
    pthread_attr_t attr;
    void *stack = NULL;
    size_t size = 0;

    /* pthread_getattr_np mallocs (a cpu set); see M_ARENA_MAX in main. */
    if (pthread_getattr_np(pthread_self(), &attr) == 0) {
        pthread_attr_getstack(&attr, &stack, &size);
        pthread_attr_destroy(&attr);
    }
    pthread_mutex_lock(&lock);
    self->tid = gettid();
    self->stack = (uintptr_t)stack;
    self->stack_size = size;
    self->started = 1;
    pthread_cond_broadcast(&cond);
    while (!self->stop)
        pthread_cond_wait(&cond, &lock);
    pthread_mutex_unlock(&lock);
    return NULL;
}

static void thread_start(void)
{
    struct thread *t;
    int err;

    if (nthreads == MAX_THREADS) {
        fail("thread-start", "too many threads");
        return;
    }
    t = &threads[nthreads];
    memset(t, 0, sizeof *t);
    err = pthread_create(&t->handle, NULL, thread_main, t);
    if (err != 0) {
        fail("thread-start", strerror(err));
        return;
    }
    nthreads++;
    pthread_mutex_lock(&lock);
    while (!t->started)
        pthread_cond_wait(&cond, &lock);
    pthread_mutex_unlock(&lock);
    printf("done thread-start tid=%d stack=0x%" PRIxPTR " size=%zu\n",
           (int)t->tid, t->stack, t->stack_size);
}

static void thread_stop(void)
{
    struct thread *t;

    if (nthreads == 0) {
        fail("thread-stop", "no thread running");
        return;
    }
    t = &threads[--nthreads];
    pthread_mutex_lock(&lock);
    t->stop = 1;
    pthread_cond_broadcast(&cond);          /* the others go back to waiting */
    pthread_mutex_unlock(&lock);
    pthread_join(t->handle, NULL);
    printf("done thread-stop tid=%d\n", (int)t->tid);
}

/* ---- anonymous mappings ------------------------------------------------------ */

/* The kernel merges a new anonymous mapping with an adjacent one of the same
 * protection, and the map would then show one line for both.  So reserve one
 * spare page on either side, map the middle over the reservation, and unmap
 * the spare pages: the mapping ends up with a hole on both sides. */
static void map_anonymous(unsigned long long bytes)
{
    size_t size;
    char *reserve, *start;

    if (bytes == 0 || bytes > (1ULL << 46)) {
        fail("mmap", "BYTES must be between 1 and 2^46");
        return;
    }
    if (nmaps == MAX_MAPS) {
        fail("mmap", "too many mappings");
        return;
    }
    size = (bytes + page_size - 1) / page_size * page_size;
    reserve = mmap(NULL, size + 2 * page_size, PROT_NONE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (reserve == MAP_FAILED) {
        fail("mmap", strerror(errno));
        return;
    }
    start = mmap(reserve + page_size, size, PROT_READ | PROT_WRITE,
                 MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
    if (start == MAP_FAILED) {
        fail("mmap", strerror(errno));
        munmap(reserve, size + 2 * page_size);
        return;
    }
    munmap(reserve, page_size);
    munmap(start + size, page_size);
    start[0] = 1;                           /* touch the first page */
    maps[nmaps].start = start;
    maps[nmaps].size = size;
    nmaps++;
    printf("done mmap start=0x%" PRIxPTR " end=0x%" PRIxPTR "\n",
           (uintptr_t)start, (uintptr_t)(start + size));
}

static void unmap_anonymous(void)
{
    struct mapping *m;

    if (nmaps == 0) {
        fail("munmap", "no mapping");
        return;
    }
    m = &maps[nmaps - 1];
    if (munmap(m->start, m->size) != 0) {
        fail("munmap", strerror(errno));
        return;
    }
    nmaps--;
    printf("done munmap start=0x%" PRIxPTR " end=0x%" PRIxPTR "\n",
           (uintptr_t)m->start, (uintptr_t)(m->start + m->size));
}

/* mprotect and unprotect: the first page of the latest mapping. */
static void protect_first_page(const char *command, int prot)
{
    struct mapping *m;

    if (nmaps == 0) {
        fail(command, "no mapping");
        return;
    }
    m = &maps[nmaps - 1];
    if (m->size < 2 * page_size) {
        fail(command, "the mapping is smaller than 2 pages");
        return;
    }
    if (mprotect(m->start, page_size, prot) != 0) {
        fail(command, strerror(errno));
        return;
    }
    printf("done %s start=0x%" PRIxPTR " end=0x%" PRIxPTR "\n", command,
           (uintptr_t)m->start, (uintptr_t)(m->start + page_size));
}

/* ---- shared libraries -------------------------------------------------------- */

struct lowest_load {
    const struct link_map *map;
    uintptr_t lowest;
};

/* dl_iterate_phdr callback: the page its first PT_LOAD segment starts on. */
static int find_lowest_load(struct dl_phdr_info *info, size_t size, void *arg)
{
    struct lowest_load *want = arg;

    (void)size;
    if (info->dlpi_addr != want->map->l_addr
        || strcmp(info->dlpi_name, want->map->l_name) != 0)
        return 0;
    for (int i = 0; i < info->dlpi_phnum; i++) {
        const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
        uintptr_t start = (info->dlpi_addr + ph->p_vaddr) & ~(page_size - 1);

        if (ph->p_type == PT_LOAD && start < want->lowest)
            want->lowest = start;
    }
    return 1;
}

static void library_open(const char *name)
{
    struct lowest_load want = {NULL, UINTPTR_MAX};
    struct link_map *map;
    void *handle;

    if (nlibs == MAX_LIBS) {
        fail("dlopen", "too many libraries");
        return;
    }
    if (strlen(name) >= sizeof libs[0].name) {
        fail("dlopen", "name too long");
        return;
    }
    handle = dlopen(name, RTLD_NOW);
    if (handle == NULL) {
        fail("dlopen", dlerror());
        return;
    }
    if (dlinfo(handle, RTLD_DI_LINKMAP, &map) == 0) {
        want.map = map;
        dl_iterate_phdr(find_lowest_load, &want);
    }
    if (want.lowest == UINTPTR_MAX) {
        fail("dlopen", "cannot find where the library is mapped");
        dlclose(handle);
        return;
    }
    libs[nlibs].handle = handle;
    strcpy(libs[nlibs].name, name);
    nlibs++;
    printf("done dlopen name=%s base=0x%" PRIxPTR "\n", name, want.lowest);
}

static void library_close(void)
{
    struct library *lib;

    if (nlibs == 0) {
        fail("dlclose", "no library open");
        return;
    }
    lib = &libs[nlibs - 1];
    if (dlclose(lib->handle) != 0) {
        fail("dlclose", dlerror());
        return;
    }
    nlibs--;
    printf("done dlclose name=%s\n", lib->name);
}

/* ---- commands ------------------------------------------------------------------ */

static void sleep_ms(unsigned long long ms)
{
    struct timespec t = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000L};

    while (nanosleep(&t, &t) != 0 && errno == EINTR)
        ;
}

/* The commands, and whether each takes its one argument. */
static const struct {
    const char *name;
    int takes_arg;
} commands[] = {
    {"heap-grow", 1}, {"heap-shrink", 0}, {"stack-grow", 1},
    {"thread-start", 0}, {"thread-stop", 0},
    {"mmap", 1}, {"munmap", 0}, {"mprotect", 0}, {"unprotect", 0},
    {"dlopen", 1}, {"dlclose", 0}, {"sleep", 1}, {"exit", 1},
};

/* Do one command line (modified in place), print its one line. */
static void run_command(char *line)
{
    char *save, *name, *arg, *extra;
    unsigned long long n = 0;
    int known = -1;

    name = strtok_r(line, " \t\r\n", &save);
    if (name == NULL) {
        fail("(empty)", "no command");
        return;
    }
    arg = strtok_r(NULL, " \t\r\n", &save);
    extra = strtok_r(NULL, " \t\r\n", &save);
    for (int i = 0; i < (int)(sizeof commands / sizeof commands[0]); i++)
        if (strcmp(name, commands[i].name) == 0)
            known = i;
    if (known < 0) {
        fail(name, "unknown command");
        return;
    }
    if (extra != NULL || (commands[known].takes_arg ? arg == NULL : arg != NULL)) {
        fail(name, commands[known].takes_arg ? "takes one argument" : "takes no argument");
        return;
    }
    if (arg != NULL && strcmp(name, "dlopen") != 0 && parse_number(arg, &n) != 0) {
        fail(name, "the argument must be a decimal number");
        return;
    }

    if (strcmp(name, "heap-grow") == 0)
        heap_grow(n);
    else if (strcmp(name, "heap-shrink") == 0)
        heap_shrink();
    else if (strcmp(name, "stack-grow") == 0)
        stack_grow(n);
    else if (strcmp(name, "thread-start") == 0)
        thread_start();
    else if (strcmp(name, "thread-stop") == 0)
        thread_stop();
    else if (strcmp(name, "mmap") == 0)
        map_anonymous(n);
    else if (strcmp(name, "munmap") == 0)
        unmap_anonymous();
    else if (strcmp(name, "mprotect") == 0)
        protect_first_page("mprotect", PROT_READ);
    else if (strcmp(name, "unprotect") == 0)
        protect_first_page("unprotect", PROT_READ | PROT_WRITE);
    else if (strcmp(name, "dlopen") == 0)
        library_open(arg);
    else if (strcmp(name, "dlclose") == 0)
        library_close();
    else if (strcmp(name, "sleep") == 0) {
        sleep_ms(n);
        printf("done sleep\n");
    } else if (n > 255)                     /* exit */
        fail(name, "CODE must be 0 to 255");
    else
        exit((int)n);
}

/* The demo's cycle: every kind of event, undone by the end of the cycle. */
static const char *const demo_steps[] = {
    "heap-grow 262144", "heap-grow 262144", "heap-grow 262144", "heap-grow 262144",
    "stack-grow 256", "stack-grow 512", "stack-grow 1024",
    "thread-start", "thread-start",
    "mmap 3145728", "mprotect", "unprotect", "munmap",
    "dlopen libm.so.6", "dlclose",
    "thread-stop", "thread-stop",
    "heap-shrink",
};

static int demo(int argc, char **argv)
{
    unsigned long long cycles = 0, pause_ms = 700;   /* 0 cycles: forever */
    const char *env = getenv("WATCH_PAUSE_MS");
    char line[64];

    if (argc > 3 || (argc == 3 && (parse_number(argv[2], &cycles) != 0 || cycles == 0))) {
        fprintf(stderr, "usage: %s demo [CYCLES]\n", argv[0]);
        return 2;
    }
    if (env != NULL && parse_number(env, &pause_ms) != 0) {
        fprintf(stderr, "%s: WATCH_PAUSE_MS must be a decimal number\n", argv[0]);
        return 2;
    }
    for (unsigned long long c = 0; cycles == 0 || c < cycles; c++) {
        for (size_t i = 0; i < sizeof demo_steps / sizeof demo_steps[0]; i++) {
            snprintf(line, sizeof line, "%s", demo_steps[i]);
            run_command(line);
            sleep_ms(pause_ms);
        }
    }
    return 0;
}

/* glibc caches memory the program gave back, and the map would not show the
 * program's steps:
 *  - it keeps the stacks of joined threads for reuse (up to 40 MiB of them)
 *    instead of unmapping them, so thread-stop would unmap nothing and the
 *    next thread-start would map nothing new;
 *  - each thread keeps small freed blocks in its own cache (tcache), where
 *    malloc_trim cannot release them, so a small block freed high in the heap
 *    (dlclose frees several) would keep heap-shrink from moving the brk down.
 * Both caches are sized by tunables read only when a program starts: run the
 * program again, in the same process (same pid), with both set to 0. */
static void rerun_without_caches(char **argv)
{
    static const char tunables[] =
        "glibc.pthread.stack_cache_size=0:glibc.malloc.tcache_count=0";
    const char *old = getenv("GLIBC_TUNABLES");
    char value[4096];

    if (old != NULL && strstr(old, tunables) != NULL)
        return;                             /* already set: this is the rerun */
    if (snprintf(value, sizeof value, "%s%s%s", old ? old : "", old ? ":" : "",
                 tunables) >= (int)sizeof value)
        return;
    setenv("GLIBC_TUNABLES", value, 1);
    /* Exec the file by its real path, not /proc/self/exe: the kernel names the
     * process after the file exec'd, and "exe" would tell a watcher nothing. */
    char self[4096];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    if (n <= 0 || n >= (ssize_t)sizeof self - 1)
        return;
    self[n] = '\0';
    execv(self, argv);
    /* If that failed, run on with the caches. */
}

/* The first dlopens malloc a table the dynamic linker keeps for good (the
 * one _dl_find_object reads; it keeps two copies and the second dlopen makes
 * the second).  Made during a command, it would sit above heap-grow's blocks
 * and keep heap-shrink from moving the brk down; so make it now, low in the
 * heap, with two dlopens and dlcloses before "ready". */
static void warm_up(void)
{
    for (int i = 0; i < 2; i++) {
        void *handle = dlopen("libm.so.6", RTLD_NOW);

        if (handle != NULL)
            dlclose(handle);
    }
}

int main(int argc, char **argv)
{
    char line[512];

    rerun_without_caches(argv);
    setvbuf(stdout, NULL, _IOLBF, 0);
    page_size = (size_t)sysconf(_SC_PAGESIZE);
    /* One malloc arena for every thread: otherwise a thread's first malloc
     * (pthread_getattr_np's) maps a new 64 MiB arena, a second event on
     * thread-start besides the thread's stack. */
    mallopt(M_ARENA_MAX, 1);
    warm_up();
    printf("ready pid=%d\n", (int)getpid());

    if (argc > 1) {
        if (strcmp(argv[1], "demo") == 0)
            return demo(argc, argv);
        fprintf(stderr, "usage: %s [demo [CYCLES]]\n", argv[0]);
        return 2;
    }
    while (fgets(line, sizeof line, stdin) != NULL) {
        size_t len = strlen(line);

        if (len == sizeof line - 1 && line[len - 1] != '\n') {
            int c;

            while ((c = getchar()) != EOF && c != '\n')
                ;                           /* drop the rest of the line */
            fail("(line)", "too long");
            continue;
        }
        run_command(line);
    }
    return 0;
}
