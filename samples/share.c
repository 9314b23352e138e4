/* Two processes sharing memory in each of the ways procmap --shared tells apart.
 *
 * Usage: share FILE
 *
 * The parent maps, then forks one child, which changes some of it:
 *   anon     16 pages, shared anonymous (MAP_SHARED|MAP_ANONYMOUS), written by
 *            the parent before the fork: parent and child map the same pages.
 *   memfd    8 pages of a memfd, mapped shared and read-only by the parent;
 *            the child makes its copy of the mapping writable and writes to it.
 *   sysv     4 pages of SysV shared memory (shmget, shmat; removed at once, so
 *            it goes when both have detached), written by the parent.
 *   file     FILE (created, 4 pages), mapped shared and read-only by the
 *            parent; the child maps it again, shared and writable, and writes.
 *   private  32 private anonymous pages (read-only pages on either side keep it
 *            one mapping), written by the parent before the fork; the child
 *            rewrites the first half, so 16 pages become its own copies and
 *            16 stay shared, copy-on-write.
 *
 * A fork copies no page table entries of shared mappings: the child maps a
 * shared page only once it touches it.  So the child reads every page of anon,
 * memfd, sysv and file: then each of their pages is mapped by both processes.
 *
 * When the child is done, the parent prints one line (stdout):
 *   ready parent=<pid> child=<pid> anon=0x.. memfd=0x.. sysv=0x.. file=0x..
 *         file_rw=0x.. private=0x.. pages=32 rewritten=16
 * (file_rw: the child's own writable mapping of FILE), then reads commands,
 * one a line, and answers each with one line:
 *   rewrite N   the parent writes the first N private pages the child has not
 *               rewritten (still shared): they become the parent's own copies
 *               -> done rewrite first=0x..
 *   end-child   the parent kills the child and reaps it -> done end-child
 * At end of input it kills the child (if still there) and exits 0.  The child
 * dies with the parent.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/shm.h>
#include <sys/wait.h>
#include <unistd.h>

#define ANON_PAGES 16
#define MEMFD_PAGES 8
#define FILE_PAGES 4
#define SYSV_PAGES 4
#define PRIVATE_PAGES 32

static void die(const char *what)
{
    perror(what);
    exit(2);
}

static void *map(size_t size, int prot, int flags, int fd)
{
    void *p = mmap(NULL, size, prot, flags, fd, 0);
    if (p == MAP_FAILED)
        die("mmap");
    return p;
}

static void touch(const volatile char *p, size_t size, long page)
{
    for (size_t i = 0; i < size; i += page)
        (void)p[i];
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: share FILE\n");
        return 2;
    }
    setvbuf(stdout, NULL, _IOLBF, 0);
    long page = sysconf(_SC_PAGESIZE);

    char *anon = map(ANON_PAGES * page, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1);
    memset(anon, 'a', ANON_PAGES * page);

    int mfd = memfd_create("procmap-share", 0);
    if (mfd < 0)
        die("memfd_create");
    char *buf = malloc(MEMFD_PAGES * page);
    memset(buf, 'm', MEMFD_PAGES * page);
    if (pwrite(mfd, buf, MEMFD_PAGES * page, 0) != MEMFD_PAGES * page)
        die("pwrite memfd");
    char *memfd = map(MEMFD_PAGES * page, PROT_READ, MAP_SHARED, mfd);
    touch(memfd, MEMFD_PAGES * page, page);

    int shmid = shmget(IPC_PRIVATE, SYSV_PAGES * page, IPC_CREAT | 0600);
    if (shmid < 0)
        die("shmget");
    char *sysv = shmat(shmid, NULL, 0);
    if (sysv == (void *)-1)
        die("shmat");
    shmctl(shmid, IPC_RMID, NULL); /* gone once no process has it attached */
    memset(sysv, 's', SYSV_PAGES * page);

    int ffd = open(argv[1], O_RDWR | O_CREAT | O_TRUNC, 0600);
    if (ffd < 0)
        die(argv[1]);
    memset(buf, 'f', FILE_PAGES * page);
    if (pwrite(ffd, buf, FILE_PAGES * page, 0) != FILE_PAGES * page)
        die("pwrite file");
    char *file = map(FILE_PAGES * page, PROT_READ, MAP_SHARED, ffd);
    touch(file, FILE_PAGES * page, page);

    char *fence = map((PRIVATE_PAGES + 2) * page, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1);
    char *private = fence + page;
    if (mprotect(private, PRIVATE_PAGES * page, PROT_READ | PROT_WRITE) != 0)
        die("mprotect");
    memset(private, 'p', PRIVATE_PAGES * page);

    int done[2];
    if (pipe(done) != 0)
        die("pipe");
    pid_t parent = getpid();
    pid_t child = fork();
    if (child < 0)
        die("fork");
    if (child == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent)
            _exit(0);
        if (mprotect(memfd, MEMFD_PAGES * page, PROT_READ | PROT_WRITE) != 0)
            die("mprotect memfd");
        touch(anon, ANON_PAGES * page, page);
        touch(memfd, MEMFD_PAGES * page, page);
        touch(file, FILE_PAGES * page, page);
        touch(sysv, SYSV_PAGES * page, page);
        memfd[0] = 'M';
        char *file_rw = map(FILE_PAGES * page, PROT_READ | PROT_WRITE, MAP_SHARED, ffd);
        file_rw[0] = 'F';
        memset(private, 'c', PRIVATE_PAGES / 2 * page);
        anon[0] = 'A';
        char line[64];
        int n = snprintf(line, sizeof line, "%p\n", (void *)file_rw);
        if (write(done[1], line, n) != n)
            _exit(2);
        for (;;)
            pause();
    }
    char line[64] = {0};
    if (read(done[0], line, sizeof line - 1) <= 0)
        die("child");
    line[strcspn(line, "\n")] = 0;
    printf("ready parent=%d child=%d anon=%p memfd=%p sysv=%p file=%p file_rw=%s private=%p "
           "pages=%d rewritten=%d\n",
           (int)parent, (int)child, (void *)anon, (void *)memfd, (void *)sysv, (void *)file,
           line, (void *)private, PRIVATE_PAGES, PRIVATE_PAGES / 2);
    char command[64];
    int rewritten = 0, alive = 1;
    while (fgets(command, sizeof command, stdin)) {
        int n;
        if (sscanf(command, "rewrite %d", &n) == 1 && n > 0 &&
            rewritten + n <= PRIVATE_PAGES / 2) {
            char *first = private + (PRIVATE_PAGES / 2 + rewritten) * page;
            memset(first, 'P', n * page);
            rewritten += n;
            printf("done rewrite first=%p\n", (void *)first);
        } else if (strcmp(command, "end-child\n") == 0 && alive) {
            kill(child, SIGKILL);
            waitpid(child, NULL, 0);
            alive = 0;
            printf("done end-child\n");
        } else {
            printf("error %s", command);
        }
    }
    if (alive) {
        kill(child, SIGKILL);
        waitpid(child, NULL, 0);
    }
    return 0;
}
