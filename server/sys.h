/*
 * sys: the seams for time, randomness and identifiers.
 *
 * Everything in hcpipe that needs the wall clock, a monotonic clock, random numbers or a UUID
 * asks this module, so a test may pin them (sys_set()) and get deterministic backoff, ids and
 * SigV4 dates. aws/ has its own clock seam (aws/sigv4.h) because it must not depend on server/.
 */
#ifndef HCPIPE_SYS_H
#define HCPIPE_SYS_H

#include <pthread.h>
#include <stdint.h>

struct sys_ops {
    int64_t (*now_ms)(void);      /* wall clock, milliseconds since the Unix epoch (UTC) */
    int64_t (*mono_ms)(void);     /* monotonic clock, milliseconds */
    uint64_t (*random_u64)(void); /* uniformly random 64 bits (need not be cryptographic) */
    void (*uuid)(char out[37]);   /* a new random UUID, lower case, NUL-terminated */
};

/* Replaces the seams (NULL restores the real ones). Not thread-safe: call before threads. */
void sys_set(const struct sys_ops *ops);

int64_t sys_now_ms(void);
int64_t sys_mono_ms(void);
uint64_t sys_random_u64(void);
void sys_uuid(char out[37]);

/* Writes the UTC date of `ms` as YYYY-MM-DD into out (11 bytes). */
void sys_date_utc(int64_t ms, char out[11]);

/* Initialises cond on the monotonic clock, for sys_cond_wait_ms() (destroy it with
 * pthread_cond_destroy()). */
void sys_cond_init(pthread_cond_t *cond);

/* Waits on cond (made by sys_cond_init()) for at most ms of real monotonic time, as
 * pthread_cond_timedwait(); the caller holds mutex. Real time even when the clocks above are
 * pinned. */
void sys_cond_wait_ms(pthread_cond_t *cond, pthread_mutex_t *mutex, int64_t ms);

/* Writes `ms` as RFC 3339 UTC with milliseconds, e.g. 2026-11-27T10:00:00.000Z (25 bytes). */
void sys_time_rfc3339(int64_t ms, char out[25]);

#endif
