/* mprotect churn: a mapping split into many and merged back, thousands of times a second.
 *
 * `procmap PID --watch` against a process like this one used to print one
 * line per page for every sample (257,000 lines in 30 s); the tests hold it to
 * a bounded number of lines per sample, each event with its count.
 *
 *   churn [PAGES]     map PAGES pages (default 1024) anonymous read-write,
 *                     print "base=0x.. end=0x.. pages=N" and "ready", then,
 *                     in a thread, over and over: make every other page
 *                     read-only (PAGES / 2 mprotects split the mapping into
 *                     PAGES mappings), then the whole of it read-write again
 *                     (one mprotect merges them back), and rest 0.5 ms.
 *                     Exits at end of stdin.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

static char *base;
static size_t pages;
static long page;

static void *churn(void *arg)
{
    (void)arg;
    for (;;) {
        for (size_t i = 0; i < pages; i += 2)
            if (mprotect(base + i * page, page, PROT_READ))
                abort();
        if (mprotect(base, pages * page, PROT_READ | PROT_WRITE))
            abort();
        usleep(500);  /* still a thousand rounds a second, and a core left to the others */
    }
    return NULL;
}

int main(int argc, char **argv)
{
    pages = argc > 1 ? strtoul(argv[1], NULL, 10) : 1024;
    page = sysconf(_SC_PAGESIZE);
    if (pages < 2)
        return 2;
    base = mmap(NULL, pages * page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (base == MAP_FAILED)
        return 1;
    for (size_t i = 0; i < pages; i++)
        base[i * page] = 1;  /* touched: resident, as a real program's would be */
    pthread_t thread;
    if (pthread_create(&thread, NULL, churn, NULL))
        return 1;
    printf("base=%p end=%p pages=%zu\nready\n", (void *)base, (void *)(base + pages * page), pages);
    fflush(stdout);
    char buf[256];
    while (read(0, buf, sizeof buf) > 0)
        ;
    return 0;
}
