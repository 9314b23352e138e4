"""What each kind of region is, and what each region detail means, as data.

Written once here, the way pyelftools keeps `elftools/elf/descriptions.py`:
tables keyed by the kinds and Detail members the classifier gives, and a
fallback for a kind they do not know.  The facts are the memory-layout lesson's
(shared/lesson/), told in procmap's own words; where the lesson draws a
simplified picture, the `reality` of each note says what Linux, glibc and the
linker really do, which is what procmap's table shows.

Pure data: nothing here imports click or rich; of procmap, only the model.
Every text is plain (square brackets only in kernel names like [heap]) so a
renderer can show it as it is.
"""

from __future__ import annotations

from typing import NamedTuple

from ..model import Detail


class KindNote(NamedTuple):
    """The lesson's explanation of one kind of region."""

    kind: str
    title: str  # short: "text: the machine code"
    holds: str  # what lives there (which C constructs land here)
    lifetime: str  # when it comes into being and goes away
    access: str  # its protection and what happens on a bad access
    growth: str  # which way it grows, or that its size is fixed at load time
    manager: str  # who manages it
    reality: str  # how the real /proc map differs from the lesson's diagram
    sharing: str  # whether other processes (and threads) share it, and how (--shared)


# One note per kind, in the order of procmap.model.KINDS (a test checks it).
NOTES: dict[str, KindNote] = {
    "text": KindNote(
        kind="text",
        title="text: the machine code",
        holds=(
            "The compiled instructions of the program and of every shared library it uses, "
            "one code mapping per loaded ELF file."
        ),
        lifetime=(
            "Mapped from the file when the program starts (or when a library is loaded) and "
            "kept until exit or dlclose(). Its pages come from the page cache, so every "
            "process running the same binary or library shares one copy in RAM."
        ),
        access=(
            "Readable and executable but never writable (r-x), so a stray store into code "
            "faults with SIGSEGV instead of silently changing the program. Keeping code "
            "unwritable and data unexecutable also blocks the simplest code-injection attacks."
        ),
        growth="Fixed at load time: the size comes from the ELF program headers.",
        manager=(
            "The compiler emits it and the linker lays it out in a PT_LOAD segment; the "
            "kernel's ELF loader maps the program and the dynamic linker, which in turn maps "
            "each shared library."
        ),
        reality=(
            "A real map has an r-xp line for each ELF image (program, ld.so, every library), "
            "not just one. Since binutils 2.31, ld on x86-64 Linux defaults to -z "
            "separate-code, so the code mapping sits between read-only mappings of the same "
            "file instead of starting at its first byte."
        ),
        sharing=(
            "Shared between processes: everyone running the same program or library maps the "
            "same page-cache pages, so a hundred processes cost one copy in RAM. That is why "
            "PSS divides each of these pages among its mappers, and why --shared lists every "
            "process that maps the file."
        ),
    ),
    "rodata": KindNote(
        kind="rodata",
        title="rodata: read-only data and headers",
        holds=(
            "String literals and const globals (.rodata), unwind tables (.eh_frame), and the "
            "ELF and program headers with the dynamic-linking tables (.dynsym, .dynstr, "
            ".rela.dyn...). It also holds RELRO: .data.rel.ro, .got, .dynamic and the "
            "init/fini arrays, which the dynamic linker fills in and then locks."
        ),
        lifetime=(
            "Mapped with the file it belongs to and gone when that file is unloaded. RELRO "
            "starts out writable and turns read-only once relocation is done, before main() "
            "runs for the libraries loaded at startup."
        ),
        access=(
            "Read-only (r--): writing to a string literal or a const object faults with "
            "SIGSEGV, and executing it faults too."
        ),
        growth="Fixed at load time, like the code.",
        manager=(
            "The compiler and linker decide what is read-only; the kernel's ELF loader or the "
            "dynamic linker maps it, and the dynamic linker applies relocations to RELRO, "
            "then calls mprotect() to drop write access."
        ),
        reality=(
            "The lesson shows one r--p line labelled rodata, but each binary usually has "
            "several: its headers and link tables before the code, .rodata and .eh_frame "
            "after it, and the RELRO part of the writable segment, made read-only after "
            "relocation. A binary linked with -z noseparate-code keeps headers and .rodata "
            "in its r-xp mapping instead."
        ),
        sharing=(
            "Shared like text: read-only pages come straight from the file's page cache, one "
            "copy for all the processes that map it. RELRO is the exception: the dynamic "
            "linker writes relocations into it before sealing it, so each process holds its "
            "own copy."
        ),
    ),
    "data": KindNote(
        kind="data",
        title="data: initialised globals and statics",
        holds=(
            "Global and static variables given a nonzero starting value, such as "
            "int x = 42; at file scope and static int y = 7; at file scope or inside a "
            "function (.data)."
        ),
        lifetime=(
            "Exists for the whole run of the program (or the life of the library it belongs "
            "to). The starting values are read from the file, and a page gets its own private "
            "copy only when the program first writes to it (copy-on-write)."
        ),
        access=(
            "Readable and writable but not executable (rw-). A write past the end of one "
            "global does not fault; it silently overwrites whatever variable comes next."
        ),
        growth="Fixed at load time: the file says exactly how many bytes it has.",
        manager=(
            "The compiler places initialised statics in .data, the linker puts them in the "
            "writable PT_LOAD segment, and the loader maps that segment privately from the file."
        ),
        reality=(
            "The lesson's single data+BSS line is really up to three parts of one segment: "
            "RELRO made read-only, .data backed by the file, and bss. They split at page "
            "boundaries, so .data and the start of bss may share one page."
        ),
        sharing=(
            "Starts as the file's page-cache pages, shared, and each page becomes the "
            "process's own the first time it is written (copy-on-write). After fork, parent "
            "and child share even the written pages until one of them writes again."
        ),
    ),
    "bss": KindNote(
        kind="bss",
        title="bss: zero-initialised globals and statics",
        holds=(
            "Globals and statics with no initialiser or an initial value of zero, such as "
            "int y; at file scope. Its name goes back to an old assembler directive, Block "
            "Started by Symbol."
        ),
        lifetime=(
            "Exists from load to exit, like data. Pages are only materialised when first "
            "touched, so a large bss costs nothing until it is used."
        ),
        access="Readable and writable, not executable (rw-), exactly like data.",
        growth=(
            "Fixed at load time: the file records only its size, as the amount by which the "
            "segment's p_memsz exceeds its p_filesz, and stores no bytes for it."
        ),
        manager=(
            "The compiler puts zero-valued statics in .bss; the kernel's ELF loader (or the "
            "dynamic linker, for libraries) supplies zero-filled pages. That is why a C "
            "global with no initialiser starts at zero."
        ),
        reality=(
            "There is no separate bss line in a real map: the part of bss that fits in the "
            "last file-backed data page is that page's zeroed tail, and the rest is a nameless "
            "anonymous rw-p mapping right after it. procmap cuts the data page at the exact "
            "byte where the file's contents end."
        ),
        sharing=(
            "A page read before it is written maps the kernel's single zero page, shared by "
            "everyone and counted as no one's. The first write gives the process a page of "
            "its own; after fork, parent and child share it copy-on-write until one of them "
            "writes."
        ),
    ),
    "heap": KindNote(
        kind="heap",
        title="heap: malloc's memory",
        holds=(
            "Every block handed out by malloc(), calloc() and realloc(), together with the "
            "allocator's own bookkeeping around those blocks."
        ),
        lifetime=(
            "A block lives from its allocation until free(), whatever function is running. "
            "Forgetting free() leaks it, using it after free() is a dangling pointer, and "
            "freeing it twice can wreck the allocator's lists."
        ),
        access=(
            "Readable and writable, not executable (rw-). Overrunning a block rarely faults; "
            "it corrupts the neighbouring block or malloc's metadata, which glibc may notice "
            "only later and abort."
        ),
        growth=(
            "Upward: the [heap] mapping starts above the program's bss (a random distance "
            "above it when addresses are randomised) and its top, the program break, moves "
            "up as malloc needs room. glibc can also give memory back by lowering the break "
            "when the top of the heap is free."
        ),
        manager=(
            "libc's allocator, not the kernel: malloc is an ordinary library function that "
            "keeps free lists and asks the kernel for more pages only when needed, with "
            "brk/sbrk or mmap()."
        ),
        reality=(
            "[heap] is only the main arena. glibc gives threads their own arenas in "
            "mmap()ed reservations aligned to 64 MiB on 64-bit systems, and serves big "
            "requests (128 KiB and up by default, M_MMAP_THRESHOLD) with a mapping each, "
            "which procmap shows as mmap."
        ),
        sharing=(
            "Shared by every thread of the process, never by another process: after fork the "
            "child sees the parent's heap pages, copy-on-write, and the first write by either "
            "one copies the page. A heap still mostly shared with a parent costs little; "
            "--shared shows how much."
        ),
    ),
    "stack": KindNote(
        kind="stack",
        title="stack: call frames",
        holds=(
            "One frame per active function call: its local variables, parameters that do "
            "not fit in registers, saved registers and the return address. The main "
            "thread's stack also starts with argv, the environment and the auxiliary vector."
        ),
        lifetime=(
            "A frame exists from the call until the function returns, and the next call "
            "reuses the same bytes. The main stack lasts as long as the process; a thread's "
            "stack as long as the thread, though glibc may keep it to reuse for a new thread."
        ),
        access=(
            "Readable and writable, not executable (rw-) unless an old binary asks for an "
            "executable stack. Overflowing a local array can overwrite the return address, "
            "and running off the end of the stack hits a guard gap and raises SIGSEGV."
        ),
        growth=(
            "Downward, toward lower addresses; allocating a frame is just subtracting from "
            "the stack pointer. The main stack is limited by RLIMIT_STACK (8 MiB by default, "
            "see ulimit -s), while a thread's stack has a fixed size chosen at creation."
        ),
        manager=(
            "The compiler's code moves the stack pointer; the kernel sets up the main stack "
            "at exec and extends it on demand, and the thread library (glibc's pthreads) "
            "maps each thread's stack."
        ),
        reality=(
            "Only the main thread's stack is named [stack], near the top of user space at a "
            "random offset, with a guard gap below it that the kernel keeps free (256 pages, "
            "1 MiB with 4 KiB pages, since Linux 4.12). Every other thread has its own stack "
            "mmap()ed by glibc, by default as large as the stack rlimit, with a no-access "
            "guard page underneath."
        ),
        sharing=(
            "Each thread has its own stack, yet every thread can reach the others' by "
            "address, since they share one address space. After fork the child's stack shares "
            "its pages with the parent's, copy-on-write."
        ),
    ),
    "mmap": KindNote(
        kind="mmap",
        title="mmap: the memory-mapping area",
        holds=(
            "Shared libraries, files mapped with mmap(), anonymous mappings (big malloc "
            "blocks among them) and shared memory (POSIX shm, System V, memfd). It also holds "
            "the kernel-provided [vdso] and [vvar], which let calls such as clock_gettime() "
            "run without entering the kernel."
        ),
        lifetime=(
            "Each mapping lasts from mmap() until munmap(), exec or exit; a library stays "
            "until dlclose() unloads it, and the vDSO for the whole life of the process."
        ),
        access=(
            "Whatever protection mmap() or mprotect() asked for, shown per mapping. Writing a "
            "read-only mapping raises SIGSEGV, and touching a file mapping beyond the end of "
            "its file raises SIGBUS."
        ),
        growth=(
            "On x86-64 the area fills top-down: the first mappings go just below the room "
            "kept for the stack to grow into, later ones further down toward the heap "
            "(bottom-up instead if the stack rlimit is unlimited). A single mapping keeps its "
            "size unless mremap() changes it."
        ),
        manager=(
            "The kernel, at the request of whoever calls mmap(): the dynamic linker for "
            "libraries, libc for big allocations and thread stacks, and the program itself."
        ),
        reality=(
            "The lesson puts this region above the stack, but Linux places it below: in the "
            "space between the heap and the stack. Library pages are shared between all "
            "processes using the same file, so the same libc appears in every map while its "
            "unmodified pages sit in RAM once."
        ),
        sharing=(
            "A shared mapping (shared memory, a memfd, a file mapped shared) is how processes "
            "share memory on purpose: one's write is seen by all, so a writer among readers "
            "needs a lock, as the lesson warns. A private mapping shares a file's pages until "
            "written, and anonymous memory is shared only copy-on-write after fork."
        ),
    ),
    "kernel": KindNote(
        kind="kernel",
        title="kernel: the kernel's half of the address space",
        holds=(
            "The kernel's code and data, its page tables and per-task kernel stacks, and "
            "memory it allocates for itself with kmalloc() and vmalloc(); none of the "
            "program's own variables."
        ),
        lifetime=(
            "Present in every process before it starts and after it ends: the same kernel "
            "half is shared by all address spaces."
        ),
        access=(
            "No access from user mode: any load, store or jump there faults and the process "
            "gets SIGSEGV. The only way in is a system call, which switches the CPU to "
            "kernel mode and runs kernel code on the program's behalf."
        ),
        growth=(
            "Fixed: the split between user and kernel space is set by the architecture and "
            "the number of page-table levels."
        ),
        manager="The kernel itself; a process can neither map nor unmap anything there.",
        reality=(
            "On x86-64 with 4-level paging the upper 128 TiB belongs to the kernel (more with "
            "5-level paging), and /proc/PID/maps lists none of it. The exception is the "
            "legacy [vsyscall] page at 0xffffffffff600000, which modern kernels make "
            "execute-only or emulate. With page-table isolation (the Meltdown fix) most of "
            "the kernel is not even mapped while user code runs."
        ),
        sharing=(
            "One copy for every process, reached only through system calls. The vdso and vvar "
            "pages the kernel puts in the mapping area are shared by all processes too."
        ),
    ),
}

# The fallback for a kind the table does not know (pyelftools' `_unknown`).
_UNKNOWN_NOTE = KindNote(
    kind="unknown",
    title="unknown: a kind procmap has no lesson for",
    holds="procmap has no description of what this kind of region holds.",
    lifetime="procmap does not know when this kind of region appears or goes away.",
    access="The permissions shown for each region are all procmap can say about it.",
    growth="procmap does not know how this kind of region grows.",
    manager="procmap does not know what manages this kind of region.",
    reality="This kind is not one of the regions the lesson describes.",
    sharing="procmap does not know how this kind of region is shared.",
)

# One sentence per region detail, keyed by the exact strings procmap.classify gives.
DETAILS: dict[Detail, str] = {
    # Parts of loaded ELF images.
    Detail.CODE: "The executable segment of a loaded ELF file, holding its machine instructions.",
    Detail.CODE_WITH_DATA: (
        "An executable segment that also starts with the ELF headers and carries the "
        "read-only data, as a binary linked with -z noseparate-code has it."
    ),
    Detail.ELF_HEADERS: (
        "The read-only segment at the start of the file: the ELF header, the program "
        "headers and the tables the dynamic linker reads (.dynsym, .dynstr, relocations)."
    ),
    Detail.EXEC_ELF_HEADERS: (
        "The ELF header, program headers and dynamic-linking tables at the start of an "
        "executable segment, mapped r-x with the code because the linker put no page "
        "boundary between them (-z noseparate-code, gold, Go)."
    ),
    Detail.EXEC_READ_ONLY_DATA: (
        "Read-only contents (.rodata, .eh_frame) that share an executable segment with the "
        "code, so they are mapped r-x although nothing executes them."
    ),
    Detail.READ_ONLY_DATA: (
        "Read-only contents such as string literals, const globals and the unwind tables "
        "(.rodata, .eh_frame)."
    ),
    Detail.RELRO: (
        "Data the dynamic linker wrote while relocating (.got, .dynamic, .data.rel.ro, "
        "init/fini arrays) and then made read-only with mprotect(), per PT_GNU_RELRO."
    ),
    Detail.DATA: "Globals and statics whose starting values come from the file (.data).",
    Detail.DATA_MADE_READ_ONLY: (
        "Bytes of a writable data segment whose mapping is no longer writable although the "
        "file declares no RELRO range, so something changed it with mprotect()."
    ),
    Detail.BSS: (
        "Zero-filled anonymous pages the loader mapped after the data for globals and "
        "statics that start at zero."
    ),
    Detail.BSS_FILE_PAGE: (
        "The zeroed tail of the last data page, where bss begins before its anonymous "
        "pages, sharing a page with the end of .data."
    ),
    Detail.SEGMENT_GAP: (
        "Padding between two segments of a loaded ELF file, left mapped with no access so "
        "the file keeps its linked layout; nothing lives there."
    ),
    # malloc.
    Detail.BRK_HEAP: (
        "The [heap] mapping: glibc's main arena, grown upward with brk/sbrk from a random "
        "point above the program's bss."
    ),
    Detail.MALLOC_ARENA: (
        "A glibc per-thread malloc arena, the read-write part of an mmap()ed reservation "
        "aligned to its maximum size (64 MiB on 64-bit systems)."
    ),
    Detail.MALLOC_ARENA_RESERVE: (
        "The not-yet-used, no-access rest of a malloc arena's reservation, made writable as "
        "that arena grows."
    ),
    # Other allocators and runtimes.
    Detail.JEMALLOC_HEAP: (
        "Memory jemalloc took from the kernel with mmap() and carves into extents: runs of "
        "pages split into slabs of one size class for small blocks, or handed out whole "
        "for large ones."
    ),
    Detail.TCMALLOC_HEAP: (
        "Memory tcmalloc took from the kernel (with sbrk first, then mmap()) and manages "
        "in spans of pages, cut into objects of one size class and cached per thread."
    ),
    Detail.MIMALLOC_HEAP: (
        "A mimalloc segment: a large aligned block from mmap(), divided into pages that "
        "each hold blocks of one size, with a free list per page."
    ),
    Detail.HEAP_RESERVE: (
        "Address space an allocator reserved with no access, to hand out later by making "
        "it read-write; it costs no memory until then."
    ),
    Detail.GO_HEAP_ARENA: (
        "A Go heap arena: 64 MiB of address space (on 64-bit Linux) the Go runtime maps at "
        "addresses of its own choosing, holding Go objects and also the stacks of "
        "goroutines, which the runtime allocates from its heap (the kernel shows an arena "
        "as several mappings where parts of it differ in access)."
    ),
    Detail.GO_HEAP_RESERVE: (
        "The part of a Go heap arena reserved with no access and not yet used; the runtime "
        "makes it read-write as the heap grows into it."
    ),
    Detail.GO_RUNTIME_DATA: (
        "Memory the Go runtime mapped for itself rather than for Go objects: the arena "
        "index, span descriptors, the garbage collector's bitmaps and other bookkeeping."
    ),
    Detail.JAVA_HEAP: (
        "The committed part of the Java heap, where the JVM allocates Java objects and its "
        "garbage collector reclaims them; with G1 it is a set of equal regions that each "
        "serve the young or the old generation in turn."
    ),
    Detail.JAVA_HEAP_YOUNG: (
        "The young generation of the Java heap, where new objects are allocated and most "
        "of them die at the next minor collection."
    ),
    Detail.JAVA_HEAP_OLD: (
        "The old generation of the Java heap, holding objects that survived several "
        "collections, collected less often."
    ),
    Detail.JAVA_HEAP_RESERVE: (
        "The part of the Java heap's reservation not yet committed: the JVM reserves the "
        "maximum heap size (-Xmx) at start-up and commits more of it as the heap grows."
    ),
    Detail.METASPACE: (
        "Metaspace: the JVM's native memory for class metadata (methods, constant pools), "
        "reserved in chunks and freed when a class loader is unloaded."
    ),
    Detail.CLASS_SPACE: (
        "The compressed class space: class structures the JVM keeps in one reservation so "
        "that objects can point to their class with 32-bit offsets."
    ),
    Detail.JVM_RESERVE: (
        "Address space the JVM reserved with no access and has not committed yet (for "
        "metaspace, the class space or the class data archive)."
    ),
    Detail.JIT_CODE: (
        "The JVM's code cache: machine code its just-in-time compilers wrote at run time, "
        "text the program produced rather than loaded from a file."
    ),
    Detail.JIT_CODE_RESERVE: (
        "The uncommitted rest of the code cache's reservation, committed as the compilers "
        "need room."
    ),
    Detail.JVM_PERF_DATA: (
        "The JVM's performance counters: a file the JVM maps shared so that tools such as "
        "jstat and jcmd can read its heap and collector figures without stopping it."
    ),
    Detail.JAVA_STACK_GUARD: (
        "No-access pages the JVM keeps at the far end of a Java thread's stack, so that a "
        "stack overflow becomes a StackOverflowError rather than a crash."
    ),
    Detail.V8_HEAP: (
        "Memory V8, the JavaScript engine of node, reserved for JavaScript objects and "
        "manages with its own garbage collector."
    ),
    Detail.V8_CODE: (
        "Machine code V8 compiled from JavaScript at run time, in the code range it "
        "reserved for that at start-up: text made by the program, not loaded from a file."
    ),
    Detail.V8_CODE_RESERVE: (
        "The part of V8's code range with no access: room reserved for code not yet "
        "compiled, and the guard pages around each page of code."
    ),
    Detail.V8_EMBEDDED_BUILTINS: (
        "V8's built-in functions, compiled into the binary and mapped again from its file "
        "into the code range, so that JIT code can call them with short jumps."
    ),
    # Stacks.
    Detail.MAIN_STACK: (
        "The [stack] mapping of the main thread, which the kernel grows downward on demand "
        "up to RLIMIT_STACK and which also holds argv, the environment and the auxiliary "
        "vector."
    ),
    Detail.GUARD_PAGE: (
        "No-access memory just below a thread's stack, so an overflow faults with SIGSEGV "
        "instead of overwriting the mapping underneath."
    ),
    Detail.THREAD_STACK: (
        "The stack of a thread made by pthread_create(), mmap()ed by glibc with a fixed "
        "size (the stack rlimit by default), its top holding the thread's descriptor and "
        "thread-local storage."
    ),
    # Kernel-provided mappings.
    Detail.VSYSCALL: (
        "The legacy [vsyscall] page at 0xffffffffff600000 in the kernel's half, kept for "
        "old binaries; modern kernels make it execute-only and emulate calls into it, or "
        "drop it entirely."
    ),
    Detail.VDSO: (
        "The vDSO, a small shared library the kernel maps into every process so that calls "
        "like clock_gettime() and gettimeofday() can run without a system call."
    ),
    Detail.VVAR: (
        "Read-only pages of kernel data, such as the current time, that the vDSO code reads."
    ),
    Detail.VVAR_VCLOCK: (
        "Pages exposing the clock source (such as a hypervisor's clock) to the vDSO, split "
        "out of [vvar] in Linux 6.13."
    ),
    Detail.UPROBES: (
        "The page where the kernel runs copies of instructions probed by a user-space "
        "probe (uprobe, as used by perf or bpftrace)."
    ),
    Detail.SIGPAGE: (
        "A kernel-provided page on 32-bit Arm holding the code that returns from a signal handler."
    ),
    Detail.VECTORS: (
        "The 32-bit Arm vectors page at 0xffff0000, outside the user range, holding the "
        "exception vectors and the small helper routines the kernel offers user code."
    ),
    # Everything else in the mapping area.
    Detail.ANONYMOUS: (
        "Private memory from mmap() with no file behind it, zero-filled on first touch; "
        "large malloc() blocks and language runtimes' heaps usually land here."
    ),
    Detail.SHARED_ANONYMOUS: (
        "Anonymous memory mapped shared (MAP_SHARED or /dev/zero), which survives fork() "
        "as memory parent and child both see."
    ),
    Detail.RESERVED: (
        "Address space reserved with no permissions at all, held for later use or as a "
        "guard, where any access faults."
    ),
    Detail.MEMFD: (
        "A RAM-backed file from memfd_create(), usually shared by passing its file "
        "descriptor to another process."
    ),
    Detail.SYSV_SHM: (
        "A System V shared memory segment attached with shmat(), which the kernel names "
        "after its key."
    ),
    Detail.POSIX_SHM: (
        "A POSIX shared memory object from shm_open(), a file in the /dev/shm tmpfs mapped "
        "with mmap()."
    ),
    Detail.HUGE_ANONYMOUS: (
        "Private anonymous memory from mmap() with MAP_HUGETLB, made of reserved huge pages "
        "(2 MiB on x86-64) that smaps counts apart from RSS, as Private_Hugetlb."
    ),
    Detail.HUGE_SHARED_ANONYMOUS: (
        "Shared anonymous memory from mmap() with MAP_HUGETLB, made of reserved huge pages "
        "that smaps counts apart from RSS, as Shared_Hugetlb or Private_Hugetlb."
    ),
    Detail.HUGETLBFS_FILE: (
        "A file on hugetlbfs mapped into memory: its pages are reserved huge pages, not "
        "page cache, and smaps counts them apart from RSS."
    ),
    Detail.DEVICE: (
        "A device file under /dev mapped into memory, such as a GPU's buffers, which the "
        "driver and not the page cache provides."
    ),
    Detail.ELF_AS_DATA: (
        "An ELF file that was mmap()ed to be read, not loaded to run, so none of its code "
        "executes from here."
    ),
    Detail.FILE: (
        "A regular file mapped private: reads come from the page cache, and writes make "
        "private copies that never reach the file."
    ),
    Detail.SHARED_FILE: (
        "A regular file mapped shared, so writes go to the page cache and then the file, "
        "and every process mapping it sees them."
    ),
    Detail.STACK_SHAPED: (
        "Read-write memory above a small no-access guard, shaped like a thread stack but "
        "used by no live thread, most likely a stack glibc keeps cached for reuse after its "
        "thread exited."
    ),
}

_NAMED_ANONYMOUS = (
    "Private anonymous memory that its owner labelled with prctl(PR_SET_VMA, "
    "PR_SET_VMA_ANON_NAME, ...), possible since Linux 5.17."
)
_NAMED_SHARED_ANONYMOUS = (
    "Shared anonymous memory that its owner labelled with prctl(PR_SET_VMA, "
    "PR_SET_VMA_ANON_NAME, ...), which the kernel shows as [anon_shmem:NAME]."
)

DETAILS[Detail.THREAD_STACK_BY_SHAPE] = (
    "The stack of a thread made by pthread_create(), whose stack pointer procmap could not "
    "read: recognised by its shape, read-write memory right above a small no-access guard."
)
DETAILS[Detail.NAMED_ANONYMOUS] = _NAMED_ANONYMOUS
DETAILS[Detail.NAMED_SHARED_ANONYMOUS] = _NAMED_SHARED_ANONYMOUS
DETAILS[Detail.KERNEL_NAMED] = (
    "A mapping the kernel named in brackets, with a name procmap has no description for."
)


# How each allocator or runtime gets its memory from the kernel, by the keys of
# model.ALLOCATORS: the map's notes show those of the runtimes a process uses.
ALLOCATOR_NOTES: dict[str, str] = {
    "glibc": (
        "glibc's malloc grows the main heap with brk, moving the program break up; each "
        "extra arena, for threads, is a 64 MiB-aligned reservation from mmap() made "
        "read-write as it fills. Blocks of 128 KiB and up get a mapping of their own, "
        "unmapped again by free()."
    ),
    "jemalloc": (
        "jemalloc asks mmap() for large runs of pages (extents) and never uses brk by "
        "default. It cuts extents into slabs of one size class each, and keeps arenas per "
        "CPU or thread; freed pages are handed back with madvise() while the address "
        "range stays mapped: with its default on 64-bit Linux (retain) it never unmaps "
        "what it mapped, so its mappings do not shrink."
    ),
    "tcmalloc": (
        "tcmalloc grows its page heap with sbrk while it can, then with mmap(); it cuts "
        "spans of pages into objects of about ninety size classes, keeps a cache of free "
        "objects per thread, and returns unused spans to the kernel with madvise()."
    ),
    "mimalloc": (
        "mimalloc maps large aligned segments with mmap(), at hinted addresses above "
        "2 TiB on 64-bit systems, and splits each into pages holding blocks of one size "
        "with a free list per page, so a block's page is found by masking its address."
    ),
    "go": (
        "The Go runtime never calls malloc for Go objects: it reserves 64 MiB heap arenas "
        "with mmap() at addresses it picks (from 0xc000000000 on x86-64, 0x4000000000 on "
        "arm64), makes them "
        "read-write as the heap grows, and gives memory back with madvise(). Goroutine "
        "stacks are allocated from the same heap, so they live inside the arenas."
    ),
    "jvm": (
        "The JVM reserves the whole Java heap (the -Xmx maximum) with one mmap() at "
        "start-up, with no access, and commits parts of it as the heap grows; metaspace, "
        "the class space and the code cache are reservations of their own. The JVM's own "
        "native memory comes from glibc's malloc."
    ),
    "v8": (
        "V8 reserves its JavaScript heap in aligned pages from mmap() and manages it with "
        "its own garbage collector; node's C++ side uses the C library's malloc."
    ),
}


def describe_kind(kind: str) -> KindNote:
    """The lesson's note for `kind`; a generic note, never KeyError, if unknown."""
    note = NOTES.get(kind)
    if note is not None:
        return note
    title = f"{kind}: a kind procmap has no lesson for"
    return _UNKNOWN_NOTE._replace(kind=kind, title=title)


def describe_detail(detail: Detail) -> str | None:
    """One sentence on a region's detail; None for a detail of no region (Detail.COMMON)."""
    return DETAILS.get(detail)


# Why a symbol lands where it does, keyed by the detail of the region that holds
# it (procmap.explain looks the detail up for each defined object or function).
SYMBOL_REASONS: dict[Detail, str] = {
    Detail.CODE: "read-only bytes placed in the executable segment",
    Detail.CODE_WITH_DATA: ("read-only, in the code segment (-z noseparate-code)"),
    Detail.ELF_HEADERS: "read-only data the dynamic linker reads",
    Detail.READ_ONLY_DATA: "const, or a string literal: read-only",
    Detail.EXEC_READ_ONLY_DATA: "const, or a string literal: read-only, though mapped r-x",
    Detail.EXEC_ELF_HEADERS: "read-only data the dynamic linker reads, though mapped r-x",
    Detail.RELRO: "const, but relocated at start-up, then made read-only",
    Detail.DATA: "has a starting value, copied from the file",
    Detail.BSS: "starts at zero: takes no space in the file",
    Detail.BSS_FILE_PAGE: "starts at zero: takes no space in the file",
    Detail.COMMON: "a tentative definition (int x;): bss once linked",
    Detail.THREAD_LOCAL: "thread-local: each thread gets its own copy",
}


def describe_symbol(type_name: str, detail: Detail | None) -> str:
    """The lesson's reason why a symbol of `type_name` lands in a region of `detail`."""
    if type_name in ("function", "ifunc") and detail in (Detail.CODE, Detail.CODE_WITH_DATA):
        return "a function: machine code"
    if detail is None:
        return "not loaded into memory"
    return SYMBOL_REASONS.get(detail, detail.text)


# What happens around the load plan at run time, keyed by how the file is loaded.
RUNTIME_NOTES: dict[str, str] = {
    "dynamic": (
        "At exec, the kernel maps these segments and the dynamic linker named by "
        "PT_INTERP, builds the main thread's stack at the top of the user half (argv, "
        "environment, auxiliary vector) and maps the vdso. The dynamic linker then maps "
        "each needed library in the mapping area, relocates, applies RELRO and jumps to "
        "the entry point. The heap begins above the bss, a random distance away, when "
        "malloc first moves the program break."
    ),
    "static": (
        "At exec, the kernel maps these segments, builds the main thread's stack at the "
        "top of the user half and maps the vdso, then jumps straight to the entry point: "
        "there is no dynamic linker and no library to map, since the C library's code is "
        "inside this file. Its start-up code applies RELRO itself. The heap begins above "
        "the bss, a random distance away, when malloc first moves the program break."
    ),
    "library": (
        "The dynamic linker maps this file in the mapping area of each process that uses "
        "it, at a base chosen at run time. Its text and read-only pages are shared with "
        "every other process through the page cache; its data and bss pages are private "
        "to each process, copied or zero-filled on first write."
    ),
}
