/* Blocks from another malloc: jemalloc, tcmalloc or mimalloc, for issue 20.
 *
 *   mallocs-jemalloc | mallocs-jemalloc-static | mallocs-tcmalloc | mallocs-mimalloc
 *
 * The same program built against each allocator (samples/mallocs.mk): it mallocs
 * blocks of 16 B, 100 B, 4000 B, 40 KB, 400 KB, 4 MB and 40 MB from the main thread
 * and the same from a second thread, writes to every byte of each, and prints
 *
 *   main-16 0xADDRESS heap          one line per block ("thread-" for the thread's)
 *   allocator NAME                  the allocator it was built for
 *   mapped BYTES                    what the allocator says it has mapped (its own count)
 *   active BYTES                    ... and has handed out or keeps in use (its own count)
 *   retained BYTES                  jemalloc: what it keeps mapped but counts as unmapped
 *   ready
 *
 * then waits until stdin closes (the second thread stays, blocked, till then).  Built with -DUSE_JEMALLOC, -DUSE_TCMALLOC or
 * -DUSE_MIMALLOC for the allocator's own report; with none of them (a plain
 * program, to run with LD_PRELOAD) it reports jemalloc's figures when it finds
 * jemalloc's mallctl loaded, and nothing else.  -DJE_PREFIX: jemalloc's API
 * is je_mallctl and the blocks come from je_malloc (a jemalloc built with
 * --with-jemalloc-prefix=je_, as redis links it; malloc() is then glibc's).
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#if defined(USE_JEMALLOC) && defined(JE_PREFIX)
/* jemalloc's API renamed je_* (its header would map je_* back to the plain names),
 * and malloc() left to glibc: blocks come from je_malloc, as redis's zmalloc calls it. */
int je_mallctl(const char *name, void *old, size_t *oldlen, void *new, size_t newlen);
void *je_malloc(size_t size);
#define MALLCTL je_mallctl
#define MALLOC je_malloc
#elif defined(USE_JEMALLOC)
#include <jemalloc/jemalloc.h>
#define MALLCTL mallctl
#elif defined(USE_TCMALLOC)
#include <gperftools/malloc_extension_c.h>
#elif defined(USE_MIMALLOC)
#include <mimalloc.h>
#else
#include <dlfcn.h>
/* A plain build finds jemalloc's mallctl when jemalloc is preloaded. */
typedef int mallctl_fn(const char *, void *, size_t *, void *, size_t);
#define USE_JEMALLOC
#define MALLCTL(...) (mallctl_p ? mallctl_p(__VA_ARGS__) : -1)
#define PLAIN
static mallctl_fn *mallctl_p;
#endif

#ifndef MALLOC
#define MALLOC malloc
#endif

static const size_t sizes[] = {16, 100, 4000, 40000, 400000, 4000000, 40000000};
#define NSIZES (sizeof sizes / sizeof sizes[0])

static char *blocks[2][NSIZES];

static void allocate(int who)
{
    for (size_t i = 0; i < NSIZES; i++) {
        char *p = MALLOC(sizes[i]);
        if (p == NULL) {
            perror("malloc");
            exit(1);
        }
        memset(p, 0x5a, sizes[i]);
        blocks[who][i] = p;
    }
}

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cond = PTHREAD_COND_INITIALIZER;
static int allocated;

/* The second thread allocates, then stays (its stack must stay a thread stack). */
static void *worker(void *arg)
{
    (void)arg;
    allocate(1);
    pthread_mutex_lock(&lock);
    allocated = 1;
    pthread_cond_broadcast(&cond);
    for (;;)
        pthread_cond_wait(&cond, &lock);
    return NULL;
}

static void report(void)
{
#if defined(USE_JEMALLOC)
#ifdef PLAIN
    mallctl_p = (mallctl_fn *)dlsym(RTLD_DEFAULT, "mallctl");
    if (mallctl_p == NULL)
        return;  /* glibc's malloc: no report */
#endif
    printf("allocator jemalloc\n");
    uint64_t epoch = 1;
    size_t len = sizeof epoch;
    MALLCTL("epoch", &epoch, &len, &epoch, len);  /* refreshes the stats */
    size_t mapped = 0, active = 0;
    len = sizeof mapped;
    if (MALLCTL("stats.mapped", &mapped, &len, NULL, 0) == 0)
        printf("mapped %zu\n", mapped);
    len = sizeof active;
    if (MALLCTL("stats.active", &active, &len, NULL, 0) == 0)
        printf("active %zu\n", active);
    size_t retained = 0;  /* unmapped by jemalloc's count, still mapped by the kernel's (opt.retain) */
    len = sizeof retained;
    if (MALLCTL("stats.retained", &retained, &len, NULL, 0) == 0)
        printf("retained %zu\n", retained);
#elif defined(USE_TCMALLOC)
    printf("allocator tcmalloc\n");
    size_t heap = 0, inuse = 0;
    if (MallocExtension_GetNumericProperty("generic.heap_size", &heap))
        printf("mapped %zu\n", heap);
    if (MallocExtension_GetNumericProperty("generic.current_allocated_bytes", &inuse))
        printf("active %zu\n", inuse);
#elif defined(USE_MIMALLOC)
    printf("allocator mimalloc\n");
    size_t elapsed, user, sys, rss, peak_rss, commit, peak_commit, faults;
    mi_process_info(&elapsed, &user, &sys, &rss, &peak_rss, &commit, &peak_commit, &faults);
    /* mimalloc counts what it committed; it keeps no count of what it reserved. */
    printf("mapped %zu\n", commit);
    printf("active %zu\n", commit);
#endif
}

int main(void)
{
    allocate(0);
    pthread_t t;
    if (pthread_create(&t, NULL, worker, NULL) != 0) {
        fprintf(stderr, "pthread_create failed\n");
        return 1;
    }
    pthread_mutex_lock(&lock);
    while (!allocated)
        pthread_cond_wait(&cond, &lock);
    pthread_mutex_unlock(&lock);
    for (int who = 0; who < 2; who++)
        for (size_t i = 0; i < NSIZES; i++)
            printf("%s-%zu %p heap\n", who ? "thread" : "main", sizes[i], (void *)blocks[who][i]);
    report();
    printf("ready\n");
    fflush(stdout);
    char buf[64];
    while (fread(buf, 1, sizeof buf, stdin) > 0)
        ;
    return 0;
}
