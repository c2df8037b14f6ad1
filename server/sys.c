/*
 * sys.c: real implementations of the seams in sys.h and the date formatting helpers.
 */
#include "server/sys.h"

#include <stdio.h>
#include <sys/random.h>
#include <time.h>
#include <uuid/uuid.h>

static int64_t real_now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int64_t real_mono_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static uint64_t real_random_u64(void)
{
    uint64_t v = 0;

    if (getrandom(&v, sizeof v, 0) != (ssize_t)sizeof v)
        v = (uint64_t)real_mono_ms() * 0x9e3779b97f4a7c15ULL;
    return v;
}

static void real_uuid(char out[37])
{
    uuid_t u;

    uuid_generate_random(u);
    uuid_unparse_lower(u, out);
}

static const struct sys_ops real_ops = {real_now_ms, real_mono_ms, real_random_u64, real_uuid};
static const struct sys_ops *ops = &real_ops;

void sys_set(const struct sys_ops *o)
{
    ops = o ? o : &real_ops;
}

int64_t sys_now_ms(void)
{
    return ops->now_ms();
}

int64_t sys_mono_ms(void)
{
    return ops->mono_ms();
}

uint64_t sys_random_u64(void)
{
    return ops->random_u64();
}

void sys_uuid(char out[37])
{
    ops->uuid(out);
}

void sys_date_utc(int64_t ms, char out[11])
{
    time_t t = (time_t)(ms / 1000);
    struct tm tm;

    gmtime_r(&t, &tm);
    strftime(out, 11, "%Y-%m-%d", &tm);
}

void sys_time_rfc3339(int64_t ms, char out[25])
{
    time_t t = (time_t)(ms / 1000);
    struct tm tm;

    gmtime_r(&t, &tm);
    strftime(out, 25, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(out + 19, 6, ".%03uZ", (unsigned)(ms % 1000) % 1000u);
}

void sys_cond_init(pthread_cond_t *cond)
{
    pthread_condattr_t ca;

    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(cond, &ca);
    pthread_condattr_destroy(&ca);
}

void sys_cond_wait_ms(pthread_cond_t *cond, pthread_mutex_t *mutex, int64_t ms)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    ts.tv_sec += (time_t)(ms / 1000);
    ts.tv_nsec += (long)(ms % 1000) * 1000000L;
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    pthread_cond_timedwait(cond, mutex, &ts);
}
