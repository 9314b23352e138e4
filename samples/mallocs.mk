# The same C program over jemalloc, tcmalloc and mimalloc (mallocs.c), one binary per
# allocator whose development files are installed (libjemalloc-dev,
# libgoogle-perftools-dev, libmimalloc-dev; `make deps`), and a plain one to run with
# LD_PRELOAD=libjemalloc.so.2.
MALLOC_LIBDIR := $(firstword $(wildcard /usr/lib/$(shell $(CC) -print-multiarch 2>/dev/null)) /usr/lib)
HAVE_JEMALLOC := $(wildcard /usr/include/jemalloc/jemalloc.h)
HAVE_JEMALLOC_PIC := $(wildcard $(MALLOC_LIBDIR)/libjemalloc_pic.a)
HAVE_TCMALLOC := $(wildcard /usr/include/gperftools/malloc_extension_c.h)
HAVE_MIMALLOC := $(wildcard /usr/include/mimalloc.h)

RUNTIME_SAMPLES += $(BIN)/mallocs-plain
RUNTIME_SAMPLES += $(if $(HAVE_JEMALLOC),$(BIN)/mallocs-jemalloc)
RUNTIME_SAMPLES += $(if $(HAVE_JEMALLOC_PIC),$(BIN)/mallocs-jemalloc-static $(BIN)/mallocs-jemalloc-prefixed)
RUNTIME_SAMPLES += $(if $(HAVE_TCMALLOC),$(BIN)/mallocs-tcmalloc)
RUNTIME_SAMPLES += $(if $(HAVE_MIMALLOC),$(BIN)/mallocs-mimalloc)

# jemalloc's public names, renamed je_* in the prefixed copy (as --with-jemalloc-prefix=je_
# builds it): malloc() then stays glibc's.
JE_PUBLIC := malloc calloc realloc free aligned_alloc posix_memalign memalign valloc \
	malloc_usable_size mallctl mallctlbymib mallctlnametomib malloc_stats_print \
	mallocx rallocx xallocx sallocx dallocx sdallocx nallocx \
	malloc_message malloc_conf malloc_conf_2_conf_harder

$(BIN)/mallocs-plain: mallocs.c mallocs.mk | $(BIN)
	$(CC) $(CFLAGS) -fPIE -pie -o $@ $< -pthread -ldl

$(BIN)/mallocs-jemalloc: mallocs.c mallocs.mk | $(BIN)
	$(CC) $(CFLAGS) -fPIE -pie -DUSE_JEMALLOC -o $@ $< -ljemalloc -pthread

# Linked in, unprefixed: the program itself defines malloc and mallctl.
$(BIN)/mallocs-jemalloc-static: mallocs.c mallocs.mk | $(BIN)
	$(CC) $(CFLAGS) -fPIE -pie -DUSE_JEMALLOC -o $@ $< $(MALLOC_LIBDIR)/libjemalloc_pic.a -pthread -ldl -lm

$(BIN)/libjemalloc-je.a: mallocs.mk | $(BIN)
	objcopy $(foreach s,$(JE_PUBLIC),--redefine-sym $(s)=je_$(s)) $(MALLOC_LIBDIR)/libjemalloc_pic.a $@

# Linked in with the je_ prefix, as redis links it: je_mallctl, je_malloc.
$(BIN)/mallocs-jemalloc-prefixed: mallocs.c mallocs.mk $(BIN)/libjemalloc-je.a | $(BIN)
	$(CC) $(CFLAGS) -fPIE -pie -DUSE_JEMALLOC -DJE_PREFIX -o $@ $< $(BIN)/libjemalloc-je.a -pthread -ldl -lm

$(BIN)/mallocs-tcmalloc: mallocs.c mallocs.mk | $(BIN)
	$(CC) $(CFLAGS) -fPIE -pie -DUSE_TCMALLOC -o $@ $< -ltcmalloc -pthread

$(BIN)/mallocs-mimalloc: mallocs.c mallocs.mk | $(BIN)
	$(CC) $(CFLAGS) -fPIE -pie -DUSE_MIMALLOC -o $@ $< -lmimalloc -pthread
