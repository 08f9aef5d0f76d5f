/*
 * streamedge heap trim (glibc): hands the malloc heap's free pages back to the kernel.
 *
 * Node allocates Buffers below glibc's mmap threshold (socket reads, upstream body chunks)
 * from malloc's arenas. A burst of them (a cache filling from its upstream) leaves the main
 * arena grown, and its free space stays resident: glibc only gives back what is free at the
 * very top of the heap. malloc_trim(0) also returns every free page inside it
 * (MADV_DONTNEED), so RSS follows what the process holds rather than its high-water mark.
 * lib/heap-trimmer.ts calls it on a timer; mallinfo2 says how the heap is used (metrics).
 *
 * Built at `npm install` by lib/native/build.ts, Node-API only. glibc-only (malloc_trim,
 * mallinfo2 from 2.33): elsewhere the build fails and streamedge runs without it.
 */
#include <malloc.h>
#include <node_api.h>

static napi_value number(napi_env env, double value) {
  napi_value result;
  napi_create_double(env, value, &result);
  return result;
}

/* trim(): malloc_trim(0); 1 when memory was given back, 0 when there was none to give. */
static napi_value trim(napi_env env, napi_callback_info info) {
  (void)info;
  return number(env, malloc_trim(0));
}

/* heapStats(): { arenaBytes, inUseBytes, freeBytes, mmappedBytes } from mallinfo2 (every arena). */
static napi_value heap_stats(napi_env env, napi_callback_info info) {
  (void)info;
  struct mallinfo2 m = mallinfo2();
  napi_value result;
  napi_create_object(env, &result);
  napi_set_named_property(env, result, "arenaBytes", number(env, (double)m.arena));
  napi_set_named_property(env, result, "inUseBytes", number(env, (double)m.uordblks));
  napi_set_named_property(env, result, "freeBytes", number(env, (double)m.fordblks));
  napi_set_named_property(env, result, "mmappedBytes", number(env, (double)m.hblkhd));
  return result;
}

static void export_function(napi_env env, napi_value exports, const char *name, napi_callback fn) {
  napi_value f;
  napi_create_function(env, name, NAPI_AUTO_LENGTH, fn, NULL, &f);
  napi_set_named_property(env, exports, name, f);
}

NAPI_MODULE_INIT() {
  export_function(env, exports, "trim", trim);
  export_function(env, exports, "heapStats", heap_stats);
  return exports;
}
