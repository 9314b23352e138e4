/* The lesson's program, grown to reach every kind of region.
 *
 * Prints one line per variable: "<name> 0x<address> <kind>", then "ready", then
 * waits until stdin closes. Kinds are the ones procmap must find for each address.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <fcntl.h>

int global_init = 42;                 /* data: initialised global */
int global_uninit;                    /* bss: uninitialised global */
static int file_scoped = 7;           /* data: file-scoped static */
static char big_zeroes[1 << 20];      /* bss: big zero-filled array, spans many pages */
static const int const_table[64] = {1, 2, 3, 5, 8, 13, 21, 34};   /* rodata */
/* A const array of pointers: needs relocation in a PIE, so it lands in
 * .data.rel.ro, made read-only after relocation (RELRO).  Without RELRO it
 * stays writable, so it is data. */
static const char *const greetings[] = {"hello", "bonjour", "hola"};

#ifdef NORELRO
#define RELRO_KIND "data"
#else
#define RELRO_KIND "rodata"
#endif

/* With -z noseparate-code (and gold's default layout), .rodata shares the
 * executable segment with the code: mapped r-x, but still read-only data. */
#define RODATA_KIND "rodata"

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cond = PTHREAD_COND_INITIALIZER;
static int thread_ready, done;

static void show(const char *name, const void *addr, const char *kind)
{
    printf("%s %p %s\n", name, addr, kind);
}

static void *worker(void *arg)
{
    int thread_local_var = 1;                 /* stack: this thread's stack */
    void *thread_heap = malloc(32);           /* heap: a per-thread malloc arena */
    (void)arg;
    pthread_mutex_lock(&lock);
    printf("thread_tid %ld -\n", (long)syscall(SYS_gettid));
    show("thread_local", &thread_local_var, "stack");
    show("thread_malloc", thread_heap, "heap");
    fflush(stdout);
    thread_ready = 1;
    pthread_cond_broadcast(&cond);
    while (!done)
        pthread_cond_wait(&cond, &lock);
    pthread_mutex_unlock(&lock);
    free(thread_heap);
    return NULL;
}

int main(int argc, char **argv)
{
    int local = 10;                           /* stack: main thread */
    int *heap = malloc(64);                   /* heap: brk */
    char *large = malloc(4 << 20);            /* mmap: above the mmap threshold */
    char *anon = mmap(NULL, 64 << 10, PROT_READ | PROT_WRITE,
                      MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    int fd = open("/proc/self/exe", O_RDONLY);
    /* The program's own ELF file mapped as plain data: mmap, not an image. */
    char *elf_as_data = mmap(NULL, 4096, PROT_READ, MAP_PRIVATE, fd, 0);
    const char *literal = "a string literal";   /* rodata: the literal, not the pointer */
    pthread_t thread;
    char buf[64];

    if (argc > 1 && strcmp(argv[1], "--nondumpable") == 0)
        prctl(PR_SET_DUMPABLE, 0);
    if (!heap || !large || anon == MAP_FAILED || elf_as_data == MAP_FAILED)
        return 1;
    close(fd);
    large[0] = anon[0] = 1;
    global_uninit = big_zeroes[0] + file_scoped + const_table[0];

    pthread_create(&thread, NULL, worker, NULL);
    pthread_mutex_lock(&lock);
    while (!thread_ready)
        pthread_cond_wait(&cond, &lock);
    pthread_mutex_unlock(&lock);

    show("global_init", &global_init, "data");
    show("global_uninit", &global_uninit, "bss");
    show("file_scoped", &file_scoped, "data");
    show("big_zeroes", big_zeroes, "bss");
    show("big_zeroes_end", big_zeroes + sizeof big_zeroes - 1, "bss");
    show("const_table", const_table, RODATA_KIND);
    show("greetings", greetings, RELRO_KIND);
    show("literal", literal, RODATA_KIND);
    show("main", (void *)main, "text");
    show("local", &local, "stack");
    show("malloc", heap, "heap");
    show("large_malloc", large, "mmap");
    show("anon_mmap", anon, "mmap");
    show("elf_as_data", elf_as_data, "mmap");
    printf("ready\n");
    fflush(stdout);

    while (read(0, buf, sizeof buf) > 0)
        ;
    pthread_mutex_lock(&lock);
    done = 1;
    pthread_cond_broadcast(&cond);
    pthread_mutex_unlock(&lock);
    pthread_join(thread, NULL);
    return 0;
}
