/*
 * log: stderr logging with syslog levels (see include/logsink/log.h).
 */
#include <sys/stat.h>

#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "logsink/log.h"

int log_level = LOG_INFO;
static bool log_journal;

static const char *const level_names[] = {
	"emerg",
	"alert",
	"crit",
	"error",
	"warning",
	"notice",
	"info",
	"debug",
};

/*
 * systemd sets JOURNAL_STREAM to "dev:inode" of the stream it connected to
 * stderr; only then is the "<N>" prefix understood (sd-daemon(3)).
 */
void
log_init(void)
{
	const char *js = getenv("JOURNAL_STREAM");
	unsigned long long dev, ino;
	struct stat st;

	log_journal = false;
	if (js == NULL || sscanf(js, "%llu:%llu", &dev, &ino) != 2)
		return;
	if (fstat(fileno(stderr), &st) == 0 && st.st_dev == dev &&
	    st.st_ino == ino)
		log_journal = true;
}

int
log_level_parse(const char *name)
{
	size_t i;

	for (i = 0; i < sizeof(level_names) / sizeof(level_names[0]); i++)
		if (strcasecmp(name, level_names[i]) == 0)
			return (int)i;
	if (strcasecmp(name, "warn") == 0)
		return LOG_WARNING;
	if (strcasecmp(name, "err") == 0)
		return LOG_ERR;
	return -1;
}

const char *
log_level_name(int level)
{
	if (level < 0 || level > LOG_DEBUG)
		return "?";
	return level_names[level];
}

static void log_vmsg(int pri, const char *fmt, va_list ap, const char *suffix)
    __attribute__((format(printf, 2, 0)));

static void
log_vmsg(int pri, const char *fmt, va_list ap, const char *suffix)
{
	char stamp[40];
	struct timespec ts;
	struct tm tm;
	int saved = errno;

	if (log_journal) {
		fprintf(stderr, "<%d>", pri);
	} else {
		clock_gettime(CLOCK_REALTIME, &ts);
		localtime_r(&ts.tv_sec, &tm);
		strftime(stamp, sizeof(stamp), "%Y-%m-%d %H:%M:%S", &tm);
		fprintf(stderr, "%s.%03ld %s: ", stamp, ts.tv_nsec / 1000000,
		    log_level_name(pri));
	}
	vfprintf(stderr, fmt, ap);
	if (suffix != NULL)
		fprintf(stderr, ": %s", suffix);
	fputc('\n', stderr);
	errno = saved;
}

void
log_msg(int pri, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_vmsg(pri, fmt, ap, NULL);
	va_end(ap);
}

/* Like log_warnx, with strerror(errno) appended. */
void
log_warn(const char *fmt, ...)
{
	const char *err = strerror(errno);
	va_list ap;

	if (LOG_WARNING > log_level)
		return;
	va_start(ap, fmt);
	log_vmsg(LOG_WARNING, fmt, ap, err);
	va_end(ap);
}

void
fatal(const char *fmt, ...)
{
	const char *err = strerror(errno);
	va_list ap;

	va_start(ap, fmt);
	log_vmsg(LOG_CRIT, fmt, ap, err);
	va_end(ap);
	exit(1);
}

void
fatalx(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_vmsg(LOG_CRIT, fmt, ap, NULL);
	va_end(ap);
	exit(1);
}
