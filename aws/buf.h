/*
 * buf: a growable byte buffer with a hard size cap.
 *
 * Used for request bodies, SigV4 canonical requests, CSV/JSON rendering and response pages.
 * The buffer always keeps a NUL after its contents, so `b.data` can be used as a C string when
 * the contents hold no NUL. A failed append (cap exceeded or out of memory) frees the buffer and
 * leaves it empty; every later append fails too until buf_init() is called again, so a chain of
 * appends needs only one check at the end (curl's dynbuf does the same).
 *
 * This is a leaf module with no hcpipe dependencies. It lives in aws/ because aws/ must not
 * depend on anything outside it; server/ and routes/ use it as well.
 */
#ifndef HCPIPE_BUF_H
#define HCPIPE_BUF_H

#include <stdarg.h>
#include <stddef.h>

struct buf {
    char *data; /* NUL-terminated contents, NULL while empty; owned by the buf */
    size_t len; /* bytes used, not counting the trailing NUL */
    size_t cap; /* bytes allocated */
    size_t max; /* hard limit on len */
    int failed; /* set once an append failed; cleared by buf_init() */
};

/* Prepares an empty buffer that may hold at most `max` bytes. Allocates nothing. */
void buf_init(struct buf *b, size_t max);

/* Frees the contents; the buffer is empty and usable again with the same cap. */
void buf_free(struct buf *b);

/* Empties the buffer but keeps its memory for reuse. */
void buf_reset(struct buf *b);

/* Appends bytes. Returns 0, or -1 (and frees the buffer) when the cap or memory runs out. */
int buf_append(struct buf *b, const void *data, size_t len);

/* Appends a NUL-terminated string. Same returns as buf_append(). */
int buf_puts(struct buf *b, const char *s);

/* Appends one byte. Same returns as buf_append(). */
int buf_putc(struct buf *b, char c);

/* Appends printf-formatted text. Same returns as buf_append(). */
int buf_printf(struct buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Appends vprintf-formatted text. Same returns as buf_append(). */
int buf_vprintf(struct buf *b, const char *fmt, va_list ap);

/* Hands the contents to the caller (free() them) and leaves the buffer empty. Returns NULL
 * when the buffer is empty or failed; *len_out (optional) receives the length. */
char *buf_steal(struct buf *b, size_t *len_out);

#endif
