/*
 * auth.c: bearer API tokens (see auth.h for the format and the guarantees).
 *
 * Organisation: the parser (auth_parse() and its per-entry check), then the check, which hashes
 * the presented token once and walks every entry without stopping at a match, then reload and
 * free. The entries array is swapped under a write lock by auth_replace(); auth_check() holds the
 * read lock.
 */
#include "server/auth.h"

#include <errno.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "server/error.h"

#define AUTH_TOKEN_MIN 16
#define AUTH_TOKEN_MAX 512
#define AUTH_DIGEST    32 /* SHA-256 */
#define AUTH_FILE_MAX  (1 << 20)

struct auth_entry {
    char name[AUTH_NAME_MAX];          /* shown in logs */
    enum auth_scope scope;             /* read or write */
    unsigned char digest[AUTH_DIGEST]; /* SHA-256 of the token */
};

struct auth {
    pthread_rwlock_t lock;      /* read: auth_check(); write: auth_replace() */
    struct auth_entry *entries; /* owned */
    size_t n;                   /* used entries */
};

static int sha256(const void *data, size_t len, unsigned char out[AUTH_DIGEST])
{
    unsigned int n = 0;

    return EVP_Digest(data, len, out, &n, EVP_sha256(), NULL) == 1 && n == AUTH_DIGEST ? 0 : -1;
}

static int name_ok(const char *s, size_t n)
{
    if (n == 0 || n >= AUTH_NAME_MAX)
        return 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '_' || c == '-'))
            return 0;
    }
    return 1;
}

static int token_ok(const char *s, size_t n)
{
    if (n < AUTH_TOKEN_MIN || n > AUTH_TOKEN_MAX)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (s[i] <= ' ' || s[i] > '~' || s[i] == ',')
            return 0;
    return 1;
}

/* Parses one entry [e, end) (already trimmed) into *ent. */
static int entry_parse(const char *e, const char *end, struct auth_entry *ent, size_t idx,
                       char *why, size_t whylen)
{
    const char *c1 = memchr(e, ':', (size_t)(end - e));
    const char *c2 = c1 ? memchr(c1 + 1, ':', (size_t)(end - c1 - 1)) : NULL;
    size_t nlen, slen;

    if (!c1 || !c2) {
        snprintf(why, whylen, "entry %zu: expected name:scope:token", idx);
        return HC_EINVAL;
    }
    nlen = (size_t)(c1 - e);
    slen = (size_t)(c2 - c1 - 1);
    if (!name_ok(e, nlen)) {
        snprintf(why, whylen, "entry %zu: the name must be 1..%d of A-Z a-z 0-9 . _ -", idx,
                 AUTH_NAME_MAX - 1);
        return HC_EINVAL;
    }
    memcpy(ent->name, e, nlen);
    ent->name[nlen] = '\0';
    if (slen == 4 && strncmp(c1 + 1, "read", 4) == 0) {
        ent->scope = AUTH_SCOPE_READ;
    } else if (slen == 5 && strncmp(c1 + 1, "write", 5) == 0) {
        ent->scope = AUTH_SCOPE_WRITE;
    } else {
        snprintf(why, whylen, "entry %zu (%s): the scope must be read or write", idx, ent->name);
        return HC_EINVAL;
    }
    if (!token_ok(c2 + 1, (size_t)(end - c2 - 1))) {
        snprintf(why, whylen,
                 "entry %zu (%s): the token must be %d..%d printable characters without spaces "
                 "or commas",
                 idx, ent->name, AUTH_TOKEN_MIN, AUTH_TOKEN_MAX);
        return HC_EINVAL;
    }
    if (sha256(c2 + 1, (size_t)(end - c2 - 1), ent->digest) != 0)
        return HC_ENOMEM;
    return HC_OK;
}

/* Rejects a second entry with the same name or token (tokens compared by digest). */
static int unique_or_why(const struct auth *a, char *why, size_t whylen)
{
    const struct auth_entry *last = &a->entries[a->n - 1];

    for (size_t i = 0; i + 1 < a->n; i++) {
        if (strcmp(a->entries[i].name, last->name) == 0) {
            snprintf(why, whylen, "entry %zu: the name %s is used twice", a->n, last->name);
            return HC_EINVAL;
        }
        if (memcmp(a->entries[i].digest, last->digest, AUTH_DIGEST) == 0) {
            snprintf(why, whylen, "entry %zu (%s): the same token as %s", a->n, last->name,
                     a->entries[i].name);
            return HC_EINVAL;
        }
    }
    return HC_OK;
}

int auth_parse(const char *text, struct auth **out, char *why, size_t whylen)
{
    struct auth *a = calloc(1, sizeof *a);
    const char *p = text;
    int err = HC_OK;

    *out = NULL;
    if (!a)
        return HC_ENOMEM;
    if (pthread_rwlock_init(&a->lock, NULL) != 0) {
        free(a);
        return HC_ENOMEM;
    }
    while (err == HC_OK && *p) {
        size_t len = strcspn(p, ",\n");
        const char *b = p, *e = p + len;
        struct auth_entry *grown;

        p = *e ? e + 1 : e;
        while (b < e && (*b == ' ' || *b == '\t' || *b == '\r'))
            b++;
        while (e > b && (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\r'))
            e--;
        if (e == b || *b == '#')
            continue;
        grown = realloc(a->entries, (a->n + 1) * sizeof *grown);
        if (!grown) {
            err = HC_ENOMEM;
            break;
        }
        a->entries = grown;
        memset(&a->entries[a->n], 0, sizeof a->entries[a->n]);
        err = entry_parse(b, e, &a->entries[a->n], a->n + 1, why, whylen);
        if (err == HC_OK) {
            a->n++;
            err = unique_or_why(a, why, whylen);
        }
    }
    if (err != HC_OK) {
        auth_free(a);
        return err;
    }
    *out = a;
    return HC_OK;
}

int auth_load(const char *text, const char *path, struct auth **out, char *why, size_t whylen)
{
    char *all = NULL;
    size_t tlen = text ? strlen(text) : 0, n = 0;
    FILE *f = NULL;
    int err = HC_OK;

    *out = NULL;
    all = malloc(tlen + 2 + AUTH_FILE_MAX + 1);
    if (!all)
        return HC_ENOMEM;
    memcpy(all, text ? text : "", tlen);
    all[tlen] = '\n';
    if (path) {
        f = fopen(path, "re");
        if (!f) {
            snprintf(why, whylen, "cannot read %s: %s", path, strerror(errno));
            err = HC_EIO;
        } else {
            n = fread(all + tlen + 1, 1, AUTH_FILE_MAX + 1, f);
            if (ferror(f)) {
                snprintf(why, whylen, "cannot read %s: %s", path, strerror(errno));
                err = HC_EIO;
            } else if (n > AUTH_FILE_MAX) {
                snprintf(why, whylen, "%s is larger than %d bytes", path, AUTH_FILE_MAX);
                err = HC_EINVAL;
            }
            fclose(f);
        }
    }
    if (err == HC_OK) {
        all[tlen + 1 + n] = '\0';
        if (memchr(all, '\0', tlen + 1 + n)) {
            snprintf(why, whylen, "the token list holds a NUL byte");
            err = HC_EINVAL;
        }
    }
    if (err == HC_OK)
        err = auth_parse(all, out, why, whylen);
    OPENSSL_cleanse(all, tlen + 2 + n);
    free(all);
    return err;
}

size_t auth_count(struct auth *a)
{
    size_t n;

    if (!a)
        return 0;
    pthread_rwlock_rdlock(&a->lock);
    n = a->n;
    pthread_rwlock_unlock(&a->lock);
    return n;
}

int auth_check(struct auth *a, const char *authorization, enum auth_scope need, char *name_out)
{
    unsigned char digest[AUTH_DIGEST];
    const char *tok;
    size_t len;
    long found = -1;
    int err;

    if (name_out)
        name_out[0] = '\0';
    if (!authorization || strncasecmp(authorization, "Bearer ", 7) != 0)
        return HC_EUNAUTHORIZED;
    tok = authorization + 7;
    tok += strspn(tok, " ");
    len = strlen(tok);
    while (len > 0 && tok[len - 1] == ' ')
        len--;
    if (len == 0 || sha256(tok, len, digest) != 0)
        return HC_EUNAUTHORIZED;
    pthread_rwlock_rdlock(&a->lock);
    /* Every entry is compared, in constant time each, whether or not one matched already. */
    for (size_t i = 0; i < a->n; i++) {
        int eq = CRYPTO_memcmp(a->entries[i].digest, digest, AUTH_DIGEST) == 0;
        found = eq ? (long)i : found;
    }
    if (found < 0) {
        err = HC_EUNAUTHORIZED;
    } else {
        if (name_out)
            memcpy(name_out, a->entries[found].name, AUTH_NAME_MAX);
        err = a->entries[found].scope >= need ? HC_OK : HC_EFORBIDDEN;
    }
    pthread_rwlock_unlock(&a->lock);
    return err;
}

void auth_replace(struct auth *a, struct auth *fresh)
{
    struct auth_entry *old;

    pthread_rwlock_wrlock(&a->lock);
    old = a->entries;
    a->entries = fresh->entries;
    a->n = fresh->n;
    pthread_rwlock_unlock(&a->lock);
    fresh->entries = old;
    fresh->n = 0;
    auth_free(fresh);
}

void auth_free(struct auth *a)
{
    if (!a)
        return;
    if (a->entries)
        OPENSSL_cleanse(a->entries, a->n * sizeof *a->entries);
    free(a->entries);
    pthread_rwlock_destroy(&a->lock);
    free(a);
}
