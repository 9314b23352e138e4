// A Go program whose heap grows past one arena, for procmap's Go rules.
//
//	goheap
//
// It allocates Go objects of several sizes (a small one, one of 32 KiB, a few
// of several MiB, then enough 1 MiB blocks to take the heap past one 64 MiB
// arena), starts goroutines that block with a local variable on their own
// stack, and prints, as the lesson's samples do:
//
//	NAME 0xADDRESS KIND   an object or a goroutine's local, KIND what procmap must say
//	memstats HeapSys HeapInuse StackInuse StackSys   the runtime's own figures, bytes
//	ready
//
// then reads stdin until it closes: on each line "grow" it allocates 128 MiB
// more, in 1 MiB blocks it keeps, and prints "grown" (the heap reaches into
// new arenas while procmap watches).  Built pure Go (CGO_ENABLED=0, bin/goheap)
// it is a static binary with no libc, so no glibc malloc in the process at
// all; built with cgo (bin/goheap-cgo) it links libc, and cgo.go adds a block
// malloc()ed by a C thread, in a glibc arena:
//
//	c_thread_malloc 0xADDRESS heap
package main

import (
	"fmt"
	"os"
	"runtime"
	"sync"
	"syscall"
	"unsafe"
)

// Kept reachable, so the collector frees none of it before procmap looks.
var keep [][]byte

// Set by cgo.go in a cgo build: malloc() a block in a C thread, return it.
var cThreadMalloc func() uintptr

func alloc(name string, size int) {
	b := make([]byte, size)
	for i := 0; i < len(b); i += 4096 {
		b[i] = 1 // touch every page: committed and resident
	}
	keep = append(keep, b)
	fmt.Printf("%s %#x heap\n", name, uintptr(unsafe.Pointer(&b[0])))
}

// park blocks a goroutine with a local on its stack, in a read(2) of a
// blocking pipe no one writes: its thread waits in the kernel with its stack
// pointer on the goroutine's stack, which the runtime took from its heap.
// The goroutine calls nothing deep after taking the address, so its stack
// does not grow (Go would move it, and the address printed would be stale).
func park(started *sync.WaitGroup, block int, out chan<- uintptr) {
	var local [64]byte
	out <- uintptr(unsafe.Pointer(&local[0]))
	started.Done()
	syscall.Read(block, local[:1]) // returns at exit only
}

func main() {
	alloc("small", 64)
	alloc("medium", 32<<10)
	for i := 0; i < 3; i++ {
		alloc(fmt.Sprintf("large%d", i), 4<<20)
	}
	// 96 MiB more in 1 MiB blocks: the heap outgrows its first 64 MiB arena.
	grow(96)
	alloc("late", 4<<20)
	if cThreadMalloc != nil {
		fmt.Printf("c_thread_malloc %#x heap\n", cThreadMalloc())
	}

	var fds [2]int
	if err := syscall.Pipe(fds[:]); err != nil { // blocking, unlike os.Pipe's
		panic(err)
	}
	r := fds[0]
	var started sync.WaitGroup
	out := make(chan uintptr, 4)
	for n := 0; n < 4; n++ {
		started.Add(1)
		go park(&started, r, out)
	}
	started.Wait()
	for n := 0; n < 4; n++ {
		fmt.Printf("goroutine%d_local %#x heap\n", n, <-out)
	}
	buf := make([]byte, 4096) // before the figures: nothing is allocated after them
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	fmt.Printf("memstats %d %d %d %d\n", ms.HeapSys, ms.HeapInuse, ms.StackInuse, ms.StackSys)
	fmt.Println("ready")
	for {
		n, err := os.Stdin.Read(buf)
		if err != nil {
			return
		}
		if n >= 4 && string(buf[:4]) == "grow" {
			grow(128)
			fmt.Println("grown")
		}
	}
}

// grow allocates `mib` 1 MiB blocks, touches every page and keeps them.
func grow(mib int) {
	for i := 0; i < mib; i++ {
		b := make([]byte, 1<<20)
		for j := 0; j < len(b); j += 4096 {
			b[j] = 1
		}
		keep = append(keep, b)
	}
}
