/*
 * streamedge zero-copy sends (Linux): a response head, then body bytes straight from the
 * page cache with sendfile(2), on a non-blocking socket that libuv owns; and a head and a
 * body from memory in one sendmsg(2), without node's stream layers in between. Everything here
 * is synchronous and never waits: the caller (lib/http/fast-front.ts) only calls in when
 * libuv has nothing queued on the socket, and writes whatever was not sent through the
 * socket's normal write path. So libuv's view of the socket never changes under it.
 *
 * Built at `npm install` by lib/native/build.ts with the system C compiler against
 * Node-API only (no V8 or libuv headers): one binary works on every Node ABI.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <node_api.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>

#ifndef __NR_cachestat
#define __NR_cachestat 451 /* the same number on every architecture (Linux 6.5) */
#endif

struct cachestat_range { uint64_t off; uint64_t len; };
struct cachestat { uint64_t nr_cache, nr_dirty, nr_writeback, nr_evicted, nr_recently_evicted; };

static long page_size;

/* 1 when every page of [off, off + len) of fd is in the page cache (cachestat(2), Linux 6.5+), 0 when one is not, -errno when the kernel cannot tell. */
static int resident_cachestat(int fd, uint64_t off, uint64_t len) {
  if (len == 0) return 1;
  uint64_t page = (uint64_t)page_size;
  struct cachestat_range range = { off, len };
  struct cachestat cs;
  if (syscall(__NR_cachestat, fd, &range, &cs, 0) != 0) return -errno;
  uint64_t pages = (off + len + page - 1) / page - off / page;
  return cs.nr_cache >= pages ? 1 : 0;
}

/*
 * The same answer on any Linux: the range mapped (never touched, so no page is read or
 * faulted in) and mincore(2) asked about it, then unmapped. Three syscalls where cachestat
 * takes one, against the copy of a large body it may spare. mincore answers for a file's
 * pages only to the file's owner or a caller that may write it (Linux 5.0+; others are told
 * every page is in): the disk tier's files are the node's own.
 */
static int resident_mincore(int fd, uint64_t off, uint64_t len) {
  if (len == 0) return 1;
  uint64_t page = (uint64_t)page_size;
  uint64_t start = off / page * page;
  size_t span = (size_t)(off + len - start);
  void *map = mmap(NULL, span, PROT_READ, MAP_SHARED, fd, (off_t)start);
  if (map == MAP_FAILED) return -errno;
  size_t pages = (span + (size_t)page - 1) / (size_t)page;
  unsigned char on_stack[1024];
  unsigned char *vec = pages <= sizeof on_stack ? on_stack : malloc(pages);
  int result;
  if (vec == NULL) {
    result = -ENOMEM;
  } else if (mincore(map, span, vec) != 0) {
    result = -errno;
  } else {
    result = 1;
    for (size_t i = 0; i < pages; i++) {
      if ((vec[i] & 1) == 0) { result = 0; break; }
    }
  }
  if (vec != on_stack) free(vec);
  munmap(map, span);
  return result;
}

/*
 * cachestat where the kernel has it, else mincore from the first refusal on: ENOSYS before
 * Linux 6.5, EPERM where a seccomp filter (a container runtime's default) does not know it.
 */
static int no_cachestat = 0;

static int resident(int fd, uint64_t off, uint64_t len) {
  if (!no_cachestat) {
    int cached = resident_cachestat(fd, off, len);
    if (cached != -ENOSYS && cached != -EPERM) return cached;
    no_cachestat = 1;
  }
  return resident_mincore(fd, off, len);
}

static napi_value number(napi_env env, int64_t value) {
  napi_value result;
  napi_create_int64(env, value, &result);
  return result;
}

static int args(napi_env env, napi_callback_info info, size_t want, napi_value *argv) {
  size_t argc = want;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < want) {
    napi_throw_type_error(env, NULL, "zero-copy: wrong number of arguments");
    return 0;
  }
  return 1;
}

/*
 * Response heads arrive as JS strings (the front builds them so) and are copied, latin1 (one
 * byte a character, as node's 'latin1' encoding writes them), to the caller's stack buffer:
 * no Buffer per answer. 1 when copied, 0 when the head is too long for the buffer.
 */
#define HEAD_MAX 8192
static int latin1_head(napi_env env, napi_value value, char *head, size_t *head_len, napi_status *status) {
  *status = napi_get_value_string_latin1(env, value, head, HEAD_MAX, head_len);
  /* the copy stops one short of the buffer (room for a NUL): a head that filled it may be cut */
  return *status == napi_ok && *head_len < HEAD_MAX - 1;
}

/*
 * sendHeadFile(socketFd, head: string, fileFd, offset, length): number
 * Sends `head`, then up to `length` bytes of fileFd from `offset`, stopping at the first
 * EAGAIN. The head goes out on its own, as nginx sends it with tcp_nopush off, not held
 * with MSG_MORE for the body's first segment. On loopback the kernel's delivery work runs
 * in whichever process is in the socket at the time; a head sent first has the client
 * reading while the body is queued, and the client's context takes more of it. In bench
 * hot-segment (wrk windows) the edge's CPU per GB was 0.184-0.186 s with MSG_MORE (run on
 * 1bf1111) and 0.105-0.131 without (run on 80ea48c; nginx 0.086-0.091), and wrk's rate fell
 * to nginx's. On a real network it costs one small segment per large answer. Returns the bytes
 * sent (head first), or -errno when nothing was sent: -ENODATA when part of the range is not
 * in the page cache (sendfile would block the event loop on a disk read; readahead of the
 * range is queued, so a later call can send it), -EAGAIN when the
 * socket buffer is full, -E2BIG when the head is longer than this helper copies (8 KiB).
 */
static napi_value send_head_file(napi_env env, napi_callback_info info) {
  napi_value argv[5];
  if (!args(env, info, 5, argv)) return NULL;
  int32_t sock, file;
  int64_t offset, length;
  char head[HEAD_MAX];
  size_t head_len;
  napi_status head_status;
  int head_fits = latin1_head(env, argv[1], head, &head_len, &head_status);
  if (napi_get_value_int32(env, argv[0], &sock) != napi_ok || head_status != napi_ok ||
      napi_get_value_int32(env, argv[2], &file) != napi_ok || napi_get_value_int64(env, argv[3], &offset) != napi_ok ||
      napi_get_value_int64(env, argv[4], &length) != napi_ok || offset < 0 || length < 0) {
    napi_throw_type_error(env, NULL, "zero-copy: expected (socketFd, head string, fileFd, offset >= 0, length >= 0)");
    return NULL;
  }
  if (!head_fits) return number(env, -E2BIG);
  int cached = resident(file, (uint64_t)offset, (uint64_t)length);
  if (cached < 0) return number(env, cached);
  if (cached == 0) {
    /*
     * Evicted pages (memory pressure, a reclaim scheme) would otherwise keep every later hit
     * copying: nothing else reads the file back while the memory tier answers. Ask for
     * readahead of the range; the kernel queues the reads and returns without waiting for
     * them, and a later hit finds the pages.
     */
    posix_fadvise(file, (off_t)offset, (off_t)length, POSIX_FADV_WILLNEED);
    return number(env, -ENODATA);
  }
  int64_t sent = 0;
  while ((size_t)sent < head_len) {
    ssize_t n = send(sock, head + sent, head_len - sent, MSG_DONTWAIT | MSG_NOSIGNAL);
    if (n >= 0) { sent += n; continue; }
    if (errno == EINTR) continue;
    return number(env, sent > 0 ? sent : -errno);
  }
  off_t position = (off_t)offset;
  int64_t left = length;
  while (left > 0) {
    ssize_t n = sendfile(sock, file, &position, (size_t)left);
    if (n > 0) { sent += n; left -= n; continue; }
    if (n < 0 && errno == EINTR) continue;
    /* EAGAIN (buffer full), an error the next write will see again, or a file shorter than promised: the caller writes the rest */
    if (n < 0 && sent == 0) return number(env, -errno);
    break;
  }
  return number(env, sent);
}

/*
 * sendHeadBody(socketFd, head: string, body: Buffer): number
 * One sendmsg(2) of `head` (latin1, as the front writes heads) and `body` on a non-blocking
 * socket. Returns the bytes sent (possibly fewer than all: the caller writes the rest), or
 * -errno when none were, -E2BIG when the head is longer than this helper copies (8 KiB).
 */
static napi_value send_head_body(napi_env env, napi_callback_info info) {
  napi_value argv[3];
  if (!args(env, info, 3, argv)) return NULL;
  int32_t sock;
  char head[HEAD_MAX];
  size_t head_len;
  napi_status head_status;
  int head_fits = latin1_head(env, argv[1], head, &head_len, &head_status);
  void *body;
  size_t body_len;
  if (napi_get_value_int32(env, argv[0], &sock) != napi_ok || head_status != napi_ok ||
      napi_get_buffer_info(env, argv[2], &body, &body_len) != napi_ok) {
    napi_throw_type_error(env, NULL, "zero-copy: expected (socketFd, head string, body Buffer)");
    return NULL;
  }
  if (!head_fits) return number(env, -E2BIG);
  struct iovec iov[2] = { { head, head_len }, { body, body_len } };
  struct msghdr msg = { 0 };
  msg.msg_iov = iov;
  msg.msg_iovlen = 2;
  for (;;) {
    ssize_t n = sendmsg(sock, &msg, MSG_DONTWAIT | MSG_NOSIGNAL);
    if (n >= 0) return number(env, n);
    if (errno != EINTR) return number(env, -errno);
  }
}

/* A way to ask whether a range is in the page cache: resident, resident_cachestat or resident_mincore. */
typedef int (*residency_fn)(int fd, uint64_t off, uint64_t len);

/*
 * resident(fileFd, offset, length): 1, 0, or -errno, as the sends ask (see above); and, for
 * tests that compare the two methods, residentByCachestat (-ENOSYS before Linux 6.5) and
 * residentByMincore. One wrapper: the method comes as the function's data.
 */
static napi_value residency_js(napi_env env, napi_callback_info info) {
  napi_value argv[3];
  size_t argc = 3;
  void *data;
  int32_t file;
  int64_t offset, length;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, &data) != napi_ok || argc < 3 ||
      napi_get_value_int32(env, argv[0], &file) != napi_ok || napi_get_value_int64(env, argv[1], &offset) != napi_ok ||
      napi_get_value_int64(env, argv[2], &length) != napi_ok || offset < 0 || length < 0) {
    napi_throw_type_error(env, NULL, "zero-copy: expected (fileFd, offset >= 0, length >= 0)");
    return NULL;
  }
  return number(env, ((residency_fn)(uintptr_t)data)(file, (uint64_t)offset, (uint64_t)length));
}

/* useMincore(): resident() asks mincore from now on, as on a kernel without cachestat (tests drive that path here). */
static napi_value use_mincore(napi_env env, napi_callback_info info) {
  (void)info;
  no_cachestat = 1;
  return number(env, 0);
}

/* residentMethod(): "mincore" once cachestat was refused (or useMincore was called), else "cachestat". */
static napi_value resident_method(napi_env env, napi_callback_info info) {
  (void)info;
  napi_value result;
  napi_create_string_latin1(env, no_cachestat ? "mincore" : "cachestat", NAPI_AUTO_LENGTH, &result);
  return result;
}

/*
 * unchanged(fileFd, ino, size, mtimeMs): 1 when the descriptor's file still has a link and is
 * inode `ino` of `size` bytes last modified at `mtimeMs` (computed as node's Stats.mtimeMs
 * is: seconds * 1e3 + nanoseconds / 1e6, in doubles), 0 when not, -errno when fstat fails.
 * One fstat(2) and three compares: node's fstatSync builds a Stats object for the same answer.
 */
static napi_value unchanged(napi_env env, napi_callback_info info) {
  napi_value argv[4];
  if (!args(env, info, 4, argv)) return NULL;
  int32_t file;
  double ino, size, mtime_ms;
  if (napi_get_value_int32(env, argv[0], &file) != napi_ok || napi_get_value_double(env, argv[1], &ino) != napi_ok ||
      napi_get_value_double(env, argv[2], &size) != napi_ok || napi_get_value_double(env, argv[3], &mtime_ms) != napi_ok) {
    napi_throw_type_error(env, NULL, "zero-copy: expected (fileFd, ino, size, mtimeMs)");
    return NULL;
  }
  struct stat st;
  if (fstat(file, &st) != 0) return number(env, -errno);
  double st_mtime_ms = (double)st.st_mtim.tv_sec * 1e3 + (double)st.st_mtim.tv_nsec / 1e6;
  return number(env, st.st_nlink > 0 && (double)st.st_ino == ino && (double)st.st_size == size && st_mtime_ms == mtime_ms ? 1 : 0);
}

/* dropCached(fileFd): asks the kernel to drop the file's clean cached pages (tests use it to make a file not resident). */
static napi_value drop_cached(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  if (!args(env, info, 1, argv)) return NULL;
  int32_t file;
  if (napi_get_value_int32(env, argv[0], &file) != napi_ok) {
    napi_throw_type_error(env, NULL, "zero-copy: expected (fileFd)");
    return NULL;
  }
  if (fdatasync(file) != 0) return number(env, -errno);
  int err = posix_fadvise(file, 0, 0, POSIX_FADV_DONTNEED);
  return number(env, -err);
}

static void export_function(napi_env env, napi_value exports, const char *name, napi_callback fn, void *data) {
  napi_value f;
  napi_create_function(env, name, NAPI_AUTO_LENGTH, fn, data, &f);
  napi_set_named_property(env, exports, name, f);
}

NAPI_MODULE_INIT() {
  page_size = sysconf(_SC_PAGESIZE);
  export_function(env, exports, "sendHeadFile", send_head_file, NULL);
  export_function(env, exports, "sendHeadBody", send_head_body, NULL);
  /* a function's data is an object pointer in Node-API; the three residency functions are stored through it */
  export_function(env, exports, "resident", residency_js, (void *)(uintptr_t)resident);
  export_function(env, exports, "residentByCachestat", residency_js, (void *)(uintptr_t)resident_cachestat);
  export_function(env, exports, "residentByMincore", residency_js, (void *)(uintptr_t)resident_mincore);
  export_function(env, exports, "useMincore", use_mincore, NULL);
  export_function(env, exports, "residentMethod", resident_method, NULL);
  export_function(env, exports, "dropCached", drop_cached, NULL);
  export_function(env, exports, "unchanged", unchanged, NULL);
  return exports;
}
