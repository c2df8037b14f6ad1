/*
 * fault.c: the fault-injection seam (contract in fault.h). Empty in normal builds; with
 * -DHCPIPE_FAULT_INJECTION: one atomic call counter shared by every thread, the armed call
 * number, per-kind injection counts, and the link-time wrappers of malloc, calloc, realloc and
 * strdup (the test program links with -Wl,--wrap=malloc,... so only hcpipe's own objects and the
 * test's calls go through them; shared libraries keep the real functions).
 */
#include "server/fault.h"

#ifdef HCPIPE_FAULT_INJECTION

#include <errno.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

static _Atomic long calls, armed, injected[FAULT_KINDS];
static _Thread_local int exempt;

int fault_fail(enum fault_kind kind)
{
    long n, at = atomic_load(&armed);

    if (exempt || at == 0)
        return 0;
    n = atomic_fetch_add(&calls, 1) + 1;
    if (n != at)
        return 0;
    atomic_fetch_add(&injected[kind], 1);
    errno = kind == FAULT_ALLOC ? ENOMEM : kind == FAULT_WRITE ? ENOSPC : EIO;
    return 1;
}

void fault_arm(long n)
{
    atomic_store(&armed, 0);
    atomic_store(&calls, 0);
    atomic_store(&armed, n);
}

long fault_calls(void)
{
    return atomic_load(&calls);
}

long fault_injected(enum fault_kind kind)
{
    long sum = 0;

    if (kind < FAULT_KINDS)
        return atomic_load(&injected[kind]);
    for (int k = 0; k < FAULT_KINDS; k++)
        sum += atomic_load(&injected[k]);
    return sum;
}

void fault_exempt_thread(int on)
{
    exempt = on;
}

void *__real_malloc(size_t n);
void *__real_calloc(size_t n, size_t size);
void *__real_realloc(void *p, size_t n);
char *__real_strdup(const char *s);
void *__wrap_malloc(size_t n);
void *__wrap_calloc(size_t n, size_t size);
void *__wrap_realloc(void *p, size_t n);
char *__wrap_strdup(const char *s);

void *__wrap_malloc(size_t n)
{
    return fault_fail(FAULT_ALLOC) ? NULL : __real_malloc(n);
}

void *__wrap_calloc(size_t n, size_t size)
{
    return fault_fail(FAULT_ALLOC) ? NULL : __real_calloc(n, size);
}

void *__wrap_realloc(void *p, size_t n)
{
    return fault_fail(FAULT_ALLOC) ? NULL : __real_realloc(p, n);
}

char *__wrap_strdup(const char *s)
{
    return fault_fail(FAULT_ALLOC) ? NULL : __real_strdup(s);
}

#else

typedef int fault_unused; /* ISO C wants at least one declaration in a file */

#endif
