//go:build cgo

package main

/*
#include <pthread.h>
#include <stdlib.h>

// A thread's first malloc() makes it a glibc arena of its own (malloc/arena.c).
static void *thread_malloc(void *arg)
{
	(void)arg;
	char *p = malloc(64 << 10);
	if (p)
		p[0] = 1;
	return p;
}

static void *malloc_in_thread(void)
{
	pthread_t t;
	void *p = NULL;
	if (pthread_create(&t, NULL, thread_malloc, NULL) == 0)
		pthread_join(t, &p);
	return p;
}
*/
import "C"

func init() {
	cThreadMalloc = func() uintptr { return uintptr(C.malloc_in_thread()) }
}
