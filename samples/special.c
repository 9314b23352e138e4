/* A process holding one of each special mapping procmap must name right.
 *
 * Prints one line per mapping, then "ready", then waits until stdin closes:
 *
 *   <name> 0x<address> <size in bytes>     the mapping was made (every page touched)
 *   <name> unsupported <reason>            this kernel or machine cannot make it
 *
 * Names, in order:
 *   anon-named     private anonymous memory named with prctl(PR_SET_VMA_ANON_NAME)
 *                  (Linux 5.17, CONFIG_ANON_VMA_NAME): [anon:procmap-private]
 *   shmem-named    shared anonymous memory named the same way (Linux 6.2):
 *                  [anon_shmem:procmap-shared]
 *   memfd          memfd_create("procmap-memfd"), ftruncate, mmap MAP_SHARED:
 *                  /memfd:procmap-memfd (deleted)
 *   sysv           a SysV shared memory segment (shmget IPC_PRIVATE, shmat), removed
 *                  with IPC_RMID at once so it never outlives the process:
 *                  /SYSV00000000 (deleted)
 *   dev-zero       mmap of /dev/zero with MAP_SHARED (shared anonymous memory, the
 *                  old way): /dev/zero (deleted)
 *   hugetlb        private anonymous huge pages, MAP_HUGETLB: /anon_hugepage (deleted)
 *   memfd-hugetlb  memfd_create("procmap-memfd-huge", MFD_HUGETLB), mmap MAP_SHARED:
 *                  /memfd:procmap-memfd-huge (deleted)
 *
 * The two hugetlb mappings are one huge page each; they need free huge pages
 * (/proc/sys/vm/nr_hugepages), and are "unsupported ENOMEM" without them.
 * The others are SIZE bytes each.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/ipc.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/shm.h>
#include <unistd.h>

#ifndef PR_SET_VMA
#define PR_SET_VMA            0x53564d41
#define PR_SET_VMA_ANON_NAME  0
#endif
#ifndef MFD_HUGETLB
#define MFD_HUGETLB           0x0004U
#endif
#ifndef MAP_HUGETLB
#define MAP_HUGETLB           0x40000
#endif

#define SIZE (64 * 1024)

static size_t page_size;

static void made(const char *name, void *addr, size_t size)
{
    volatile char *p = addr;

    for (size_t i = 0; i < size; i += page_size)
        p[i] = 1;                       /* every page resident */
    printf("%s %p %zu\n", name, addr, size);
}

static void unsupported(const char *name, const char *why)
{
    printf("%s unsupported %s\n", name, why);
}

/* errno's name, where the reason is an errno: a test can say why it skips. */
static const char *errno_name(int err)
{
    switch (err) {
    case EINVAL: return "EINVAL";
    case ENOMEM: return "ENOMEM";
    case ENOSYS: return "ENOSYS";
    case EPERM:  return "EPERM";
    case EACCES: return "EACCES";
    case ENOSPC: return "ENOSPC";
    case ENOENT: return "ENOENT";
    default:     return strerror(err);
    }
}

/* Anonymous memory (flags: MAP_PRIVATE or MAP_SHARED) named with prctl. */
static void named(const char *name, int flags, const char *label)
{
    void *p = mmap(NULL, SIZE, PROT_READ | PROT_WRITE, flags | MAP_ANONYMOUS, -1, 0);

    if (p == MAP_FAILED) {
        unsupported(name, errno_name(errno));
        return;
    }
    if (prctl(PR_SET_VMA, PR_SET_VMA_ANON_NAME, (unsigned long)p, SIZE,
              (unsigned long)label) != 0) {
        unsupported(name, errno_name(errno));
        munmap(p, SIZE);
        return;
    }
    made(name, p, SIZE);
}

/* memfd_create, ftruncate to size, mmap MAP_SHARED. */
static void memfd(const char *name, const char *label, unsigned int flags, size_t size)
{
    int fd = memfd_create(label, MFD_CLOEXEC | flags);
    void *p;

    if (fd < 0) {
        unsupported(name, errno_name(errno));
        return;
    }
    if (ftruncate(fd, (off_t)size) != 0) {
        unsupported(name, errno_name(errno));
        close(fd);
        return;
    }
    p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    close(fd);                          /* the mapping holds the file */
    if (p == MAP_FAILED) {
        unsupported(name, errno_name(errno));
        return;
    }
    made(name, p, size);
}

static void sysv(void)
{
    int id = shmget(IPC_PRIVATE, SIZE, IPC_CREAT | 0600);
    void *p;

    if (id < 0) {
        unsupported("sysv", errno_name(errno));
        return;
    }
    p = shmat(id, NULL, 0);
    /* Removed now: the segment lives until its last detach (our exit), and
     * no process killed before it gets there leaves one behind. */
    shmctl(id, IPC_RMID, NULL);
    if (p == (void *)-1) {
        unsupported("sysv", errno_name(errno));
        return;
    }
    made("sysv", p, SIZE);
}

static void dev_zero(void)
{
    int fd = open("/dev/zero", O_RDWR | O_CLOEXEC);
    void *p;

    if (fd < 0) {
        unsupported("dev-zero", errno_name(errno));
        return;
    }
    p = mmap(NULL, SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    close(fd);
    if (p == MAP_FAILED) {
        unsupported("dev-zero", errno_name(errno));
        return;
    }
    made("dev-zero", p, SIZE);
}

/* The default huge page size, from /proc/meminfo; 0 if the kernel has none. */
static size_t huge_page_size(void)
{
    FILE *f = fopen("/proc/meminfo", "r");
    char line[128];
    unsigned long kib = 0;

    if (f == NULL)
        return 0;
    while (fgets(line, sizeof line, f) != NULL)
        if (sscanf(line, "Hugepagesize: %lu kB", &kib) == 1)
            break;
    fclose(f);
    return (size_t)kib * 1024;
}

static void hugetlb(void)
{
    size_t huge = huge_page_size();
    void *p;

    if (huge == 0) {
        unsupported("hugetlb", "no-huge-pages-in-this-kernel");
        unsupported("memfd-hugetlb", "no-huge-pages-in-this-kernel");
        return;
    }
    p = mmap(NULL, huge, PROT_READ | PROT_WRITE,
             MAP_PRIVATE | MAP_ANONYMOUS | MAP_HUGETLB, -1, 0);
    if (p == MAP_FAILED)
        unsupported("hugetlb", errno_name(errno));
    else
        made("hugetlb", p, huge);
    memfd("memfd-hugetlb", "procmap-memfd-huge", MFD_HUGETLB, huge);
}

int main(void)
{
    char buf[64];

    page_size = (size_t)sysconf(_SC_PAGESIZE);
    named("anon-named", MAP_PRIVATE, "procmap-private");
    named("shmem-named", MAP_SHARED, "procmap-shared");
    memfd("memfd", "procmap-memfd", 0, SIZE);
    sysv();
    dev_zero();
    hugetlb();
    printf("ready\n");
    fflush(stdout);

    while (read(0, buf, sizeof buf) > 0)
        ;
    return 0;
}
