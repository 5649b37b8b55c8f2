/*
 * log: the daemon's own log, on stderr.  Levels are syslog priorities.
 * Under systemd (JOURNAL_STREAM names our stderr) lines carry an sd-daemon
 * "<N>" prefix and no timestamp; elsewhere a timestamp and a level word.
 */
#ifndef LOGSINK_LOG_H
#define LOGSINK_LOG_H

#include <syslog.h>

extern int log_level;

void log_init(void);
int log_level_parse(const char *name); /* -1 if unknown */
const char *log_level_name(int level);

void log_msg(int pri, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
void log_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void fatal(const char *fmt, ...)
    __attribute__((format(printf, 1, 2), noreturn));
void fatalx(const char *fmt, ...)
    __attribute__((format(printf, 1, 2), noreturn));

/* The level is checked before the arguments are evaluated. */
#define LOG_AT(pri, ...)                                                       \
	do {                                                                   \
		if ((pri) <= log_level)                                        \
			log_msg((pri), __VA_ARGS__);                           \
	} while (0)
#define log_warnx(...)  LOG_AT(LOG_WARNING, __VA_ARGS__)
#define log_errx(...)   LOG_AT(LOG_ERR, __VA_ARGS__)
#define log_notice(...) LOG_AT(LOG_NOTICE, __VA_ARGS__)
#define log_info(...)   LOG_AT(LOG_INFO, __VA_ARGS__)
#define log_debug(...)  LOG_AT(LOG_DEBUG, __VA_ARGS__)

#endif
