/*
 * fault: the fault-injection seam of test builds.
 *
 * Production code marks a fallible call with FAULT_FAIL(kind): in a normal build the macro is the
 * constant 0 and nothing else is compiled in. In a build with -DHCPIPE_FAULT_INJECTION (only the
 * test program tests/unit/test_fault.c, built by the Makefile from its own objects) every marked
 * call, every SQLite call of the job store (sqlite3_prepare_v2/step/exec, redirected below) and
 * every malloc/calloc/realloc/strdup of hcpipe's objects (the link wraps them) is counted, and
 * the Nth one after fault_arm(N) fails, once.
 */
#ifndef HCPIPE_FAULT_H
#define HCPIPE_FAULT_H

enum fault_kind {
    FAULT_SQL,   /* an SQLite call of the job store: answers SQLITE_IOERR */
    FAULT_WRITE, /* a result-file write, flush, fsync, open or rename: fails with ENOSPC */
    FAULT_ALLOC, /* an allocation of hcpipe's code: NULL */
    FAULT_KINDS
};

#ifdef HCPIPE_FAULT_INJECTION

#include <sqlite3.h>

/* 1 when this call must fail (the armed Nth counted call); counts the call otherwise. */
int fault_fail(enum fault_kind kind);

/* From now on the Nth counted call fails, once (0 disarms). Resets the counters. */
void fault_arm(long n);

/* Counted calls since the last fault_arm(), and faults injected since the start of the program,
 * in total (kind = FAULT_KINDS) or of one kind. */
long fault_calls(void);
long fault_injected(enum fault_kind kind);

/* 1: calls of the current thread are neither counted nor failed (a test's own bookkeeping). */
void fault_exempt_thread(int exempt);

#define FAULT_FAIL(kind) fault_fail(kind)

/* The SQLite calls of every file that includes this header (server/jobstore.c). */
#define sqlite3_step(st) (fault_fail(FAULT_SQL) ? SQLITE_IOERR : sqlite3_step(st))
#define sqlite3_prepare_v2(db, sql, n, st, tail)                                                   \
    (fault_fail(FAULT_SQL) ? (*(st) = NULL, SQLITE_IOERR)                                          \
                           : sqlite3_prepare_v2(db, sql, n, st, tail))
#define sqlite3_exec(db, sql, cb, arg, errmsg)                                                     \
    (fault_fail(FAULT_SQL) ? SQLITE_IOERR : sqlite3_exec(db, sql, cb, arg, errmsg))

#else

#define FAULT_FAIL(kind) 0

#endif

#endif
