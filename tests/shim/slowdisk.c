/*
 * slowdisk: an LD_PRELOAD shim that makes one directory's disk slow, for
 * tests/integration/test_slow_disk.py and bench/slow_disk.sh.
 *
 *   SLOWDISK_DIR=/path       files under it (and the directory itself)
 *   SLOWDISK_MS=150          fsync()/fdatasync() sleep this long first
 *   SLOWDISK_WRITE_MS=0      write()/pwrite()/pwritev() sleep this long
 *   SLOWDISK_EIO_AFTER=N     fdatasync() calls after the first N fail
 *                            with EIO (not called; unset: never)
 *   SLOWDISK_LOG=/path/log   one line per delayed call (appended):
 *                            "CALL main|thread START_NS END_NS PATH"
 *                            CLOCK_MONOTONIC ns around the real call
 *                            (the sleep included), "main" if the calling
 *                            thread is the process's first one
 *
 * Everything else passes straight through.  The path of an fd is read
 * from /proc/self/fd on each call: a test shim, not fast.
 */
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/uio.h>

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static long
env_ms(const char *name)
{
	const char *v = getenv(name);

	return v != NULL ? strtol(v, NULL, 10) : 0;
}

static int64_t
now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* Whether fd is the slow directory or a file under it; path gets it. */
static bool
slow_fd(int fd, char *path, size_t len)
{
	const char *dir = getenv("SLOWDISK_DIR");
	char link[64];
	size_t n;
	ssize_t r;

	if (dir == NULL || *dir == '\0')
		return false;
	snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
	if ((r = readlink(link, path, len - 1)) <= 0)
		return false;
	path[r] = '\0';
	n = strlen(dir);
	while (n > 1 && dir[n - 1] == '/')
		n--;
	return strncmp(path, dir, n) == 0 &&
	    (path[n] == '\0' || path[n] == '/');
}

static void
sleep_ms(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000 };

	while (ms > 0 && nanosleep(&ts, &ts) == -1 && errno == EINTR)
		;
}

static void
note(const char *call, int64_t start, int64_t end, const char *path)
{
	const char *log = getenv("SLOWDISK_LOG");
	char line[4200];
	int fd, n, saved = errno;

	if (log == NULL || *log == '\0')
		return;
	n = snprintf(line, sizeof(line), "%s %s %lld %lld %s\n", call,
	    syscall(SYS_gettid) == getpid() ? "main" : "thread",
	    (long long)start, (long long)end, path);
	if ((fd = open(log, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600)) !=
	    -1) {
		if (write(fd, line, (size_t)n) != n)
			(void)0;
		close(fd);
	}
	errno = saved;
}

/* One intercepted call: delay if slow, call the real one, note it. */
#define SLOW_CALL(name, env, fd, real_call)                                    \
	do {                                                                   \
		char path[4096];                                               \
		int64_t start;                                                 \
		int saved;                                                     \
		if (!slow_fd((fd), path, sizeof(path)))                        \
			return real_call;                                      \
		start = now_ns();                                              \
		sleep_ms(env_ms(env));                                         \
		__typeof__(real_call) ret_ = real_call;                        \
		saved = errno;                                                 \
		note(name, start, now_ns(), path);                             \
		errno = saved;                                                 \
		return ret_;                                                   \
	} while (0)

/* The next definition of name (libc's), into *fp (a function pointer;
 * copied, as ISO C has no cast from void * to one). */
static void
real(void *fp, size_t size, const char *name)
{
	void *f = dlsym(RTLD_NEXT, name);

	if (f == NULL || size != sizeof(f))
		abort();
	memcpy(fp, &f, size);
}

/* SLOWDISK_EIO_AFTER: this fdatasync (the how-manieth) fails. */
static int
eio_fdatasync(int fd)
{
	static long calls;
	const char *v = getenv("SLOWDISK_EIO_AFTER");

	(void)fd;
	if (v == NULL ||
	    __atomic_add_fetch(&calls, 1, __ATOMIC_SEQ_CST) <=
		strtol(v, NULL, 10))
		return 0;
	errno = EIO;
	return -1;
}

int
fdatasync(int fd)
{
	static int (*f)(int);

	if (f == NULL)
		real(&f, sizeof(f), "fdatasync");
	SLOW_CALL("fdatasync", "SLOWDISK_MS", fd,
	    eio_fdatasync(fd) == -1 ? -1 : f(fd));
}

int
fsync(int fd)
{
	static int (*f)(int);

	if (f == NULL)
		real(&f, sizeof(f), "fsync");
	SLOW_CALL("fsync", "SLOWDISK_MS", fd, f(fd));
}

ssize_t
write(int fd, const void *p, size_t n)
{
	static ssize_t (*f)(int, const void *, size_t);

	if (f == NULL)
		real(&f, sizeof(f), "write");
	if (env_ms("SLOWDISK_WRITE_MS") <= 0)
		return f(fd, p, n);
	SLOW_CALL("write", "SLOWDISK_WRITE_MS", fd, f(fd, p, n));
}

ssize_t
pwrite(int fd, const void *p, size_t n, off_t off)
{
	static ssize_t (*f)(int, const void *, size_t, off_t);

	if (f == NULL)
		real(&f, sizeof(f), "pwrite");
	if (env_ms("SLOWDISK_WRITE_MS") <= 0)
		return f(fd, p, n, off);
	SLOW_CALL("pwrite", "SLOWDISK_WRITE_MS", fd, f(fd, p, n, off));
}

ssize_t
pwritev(int fd, const struct iovec *iov, int n, off_t off)
{
	static ssize_t (*f)(int, const struct iovec *, int, off_t);

	if (f == NULL)
		real(&f, sizeof(f), "pwritev");
	if (env_ms("SLOWDISK_WRITE_MS") <= 0)
		return f(fd, iov, n, off);
	SLOW_CALL("pwritev", "SLOWDISK_WRITE_MS", fd, f(fd, iov, n, off));
}
