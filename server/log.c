/*
 * log.c: JSON-lines logger. Builds each line with jansson (so every value is escaped correctly)
 * and writes it with a single write(2).
 */
#include "server/log.h"

#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static enum log_level min_level = LOG_INFO;
static const char *const level_names[] = {"debug", "info", "warn", "error"};

void log_set_level(enum log_level level)
{
    min_level = level;
}

int log_level_parse(const char *name)
{
    for (int i = 0; i < 4; i++)
        if (strcmp(name, level_names[i]) == 0)
            return i;
    return -1;
}

void log_msg(enum log_level level, const char *msg, ...)
{
    struct timespec ts;
    struct tm tm;
    char when[40];
    const char *key;
    json_t *line;
    char *text;
    va_list ap;

    if (level < min_level)
        return;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(when + 19, sizeof when - 19, ".%03ldZ", ts.tv_nsec / 1000000);

    line = json_object();
    if (!line)
        return;
    json_object_set_new(line, "time", json_string(when));
    json_object_set_new(line, "level", json_string(level_names[level]));
    json_object_set_new(line, "msg", json_string(msg));
    va_start(ap, msg);
    while ((key = va_arg(ap, const char *)) != NULL) {
        const char *val = va_arg(ap, const char *);
        json_object_set_new(line, key, val ? json_string(val) : json_null());
    }
    va_end(ap);
    text = json_dumps(line, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(line);
    if (text) {
        size_t n = strlen(text);
        text[n] = '\n'; /* replaces the NUL; the length below excludes nothing else */
        if (write(STDERR_FILENO, text, n + 1) < 0) {
            /* Nothing sensible to do when stderr is gone. */
        }
        free(text);
    }
}
