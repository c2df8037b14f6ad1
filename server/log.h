/*
 * log: structured logs, one JSON object per line on stderr.
 *
 * Every line has "time" (RFC 3339 UTC, milliseconds), "level" and "msg"; callers add fields as
 * key/value string pairs ending with NULL:
 *
 *     log_info("job finished", "job_id", job->id, "state", "succeeded", NULL);
 *
 * Never pass a secret (keys, tokens, passwords, Authorization headers) as a value. Lines are
 * written with one write(2) each, so threads never interleave within a line.
 */
#ifndef HCPIPE_LOG_H
#define HCPIPE_LOG_H

enum log_level { LOG_DEBUG, LOG_INFO, LOG_WARN, LOG_ERROR };

/* Sets the lowest level written (default LOG_INFO). Call before threads start. */
void log_set_level(enum log_level level);

/* Parses "debug", "info", "warn" or "error"; returns -1 for anything else. */
int log_level_parse(const char *name);

/* Writes one line; the variadic part is key, value, key, value, ..., NULL (values may be NULL,
 * written as null). */
void log_msg(enum log_level level, const char *msg, ...) __attribute__((sentinel));

#define log_debug(...) log_msg(LOG_DEBUG, __VA_ARGS__)
#define log_info(...)  log_msg(LOG_INFO, __VA_ARGS__)
#define log_warn(...)  log_msg(LOG_WARN, __VA_ARGS__)
#define log_error(...) log_msg(LOG_ERROR, __VA_ARGS__)

#endif
