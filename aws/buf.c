/*
 * buf.c: the capped growable buffer. Growth doubles the allocation (at least 64 bytes) and never
 * allocates past max + 1 (the trailing NUL).
 */
#include "aws/buf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void buf_init(struct buf *b, size_t max)
{
    b->data = NULL;
    b->len = 0;
    b->cap = 0;
    b->max = max;
    b->failed = 0;
}

void buf_free(struct buf *b)
{
    free(b->data);
    b->data = NULL;
    b->len = 0;
    b->cap = 0;
}

void buf_reset(struct buf *b)
{
    b->len = 0;
    if (b->data)
        b->data[0] = '\0';
}

static int buf_fail(struct buf *b)
{
    buf_free(b);
    b->failed = 1;
    return -1;
}

static int buf_reserve(struct buf *b, size_t extra)
{
    size_t need, ncap;
    char *p;

    if (b->failed || extra > b->max - b->len)
        return buf_fail(b);
    need = b->len + extra + 1;
    if (need <= b->cap)
        return 0;
    ncap = b->cap ? b->cap : 64;
    while (ncap < need)
        ncap = ncap > ((size_t)-1) / 2 ? need : ncap * 2;
    if (ncap > b->max + 1)
        ncap = b->max + 1;
    p = realloc(b->data, ncap);
    if (!p)
        return buf_fail(b);
    b->data = p;
    b->cap = ncap;
    return 0;
}

int buf_append(struct buf *b, const void *data, size_t len)
{
    if (buf_reserve(b, len))
        return -1;
    if (len)
        memcpy(b->data + b->len, data, len);
    b->len += len;
    b->data[b->len] = '\0';
    return 0;
}

int buf_puts(struct buf *b, const char *s)
{
    return buf_append(b, s, strlen(s));
}

int buf_putc(struct buf *b, char c)
{
    return buf_append(b, &c, 1);
}

int buf_vprintf(struct buf *b, const char *fmt, va_list ap)
{
    va_list ap2;
    int n;

    va_copy(ap2, ap);
    n = vsnprintf(NULL, 0, fmt, ap2);
    va_end(ap2);
    if (n < 0 || buf_reserve(b, (size_t)n))
        return n < 0 ? buf_fail(b) : -1;
    vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
    b->len += (size_t)n;
    return 0;
}

int buf_printf(struct buf *b, const char *fmt, ...)
{
    va_list ap;
    int rc;

    va_start(ap, fmt);
    rc = buf_vprintf(b, fmt, ap);
    va_end(ap);
    return rc;
}

char *buf_steal(struct buf *b, size_t *len_out)
{
    char *p = b->failed ? NULL : b->data;

    if (len_out)
        *len_out = p ? b->len : 0;
    if (!p)
        buf_free(b);
    b->data = NULL;
    b->len = 0;
    b->cap = 0;
    return p;
}
