// Go's sync.Pool on the workload of bench/pool_benchmark.cc's
// BM_pool_get_put<heap_buffer>: a small object owning a 4096-byte array,
// taken with Get, one byte written, given back with Put.
//
// Run by bench/compare_go_pool.sh, which sets the environment; by hand:
//
//	cd bench/go_sync_pool && GOFLAGS=-mod=mod go test -run '^$' -bench . -count 5

package syncpoolcompare

import (
	"sync"
	"testing"
)

type heapBuffer struct {
	data []byte
}

var pool = sync.Pool{New: func() any { return &heapBuffer{data: make([]byte, 4096)} }}

// One goroutine: Get+Put on its own P's private slot, the path a
// syncpool::pool<T> hit in the calling thread's cache corresponds to.
func BenchmarkGetPut(b *testing.B) {
	var n byte
	for i := 0; i < b.N; i++ {
		buf := pool.Get().(*heapBuffer)
		buf.data[0] = n
		n++
		pool.Put(buf)
	}
}
