/*
 * auth: bearer API tokens for the jobs API and the dashboard (HCPIPE_API_TOKENS,
 * HCPIPE_API_TOKENS_FILE).
 *
 * A token list is text: entries `name:scope:token` separated by commas or newlines, where name is
 * 1..64 of [A-Za-z0-9._-], scope is `read` (GET/HEAD routes) or `write` (every route), and token
 * is 16..512 printable ASCII characters without spaces or commas (it may hold ':'). Blank lines
 * and lines starting with '#' are ignored (for files). Names and tokens must be unique.
 *
 * Only SHA-256 digests of the tokens are kept. A check hashes the presented token and compares it
 * with every entry's digest using CRYPTO_memcmp, so neither the token's length nor a matching
 * prefix shows in the time taken. Tokens are never logged or echoed; only names are.
 *
 * A struct auth may be replaced while requests use it (auth_replace() on SIGHUP); checks and
 * replacement are serialised by a read-write lock inside.
 */
#ifndef HCPIPE_AUTH_H
#define HCPIPE_AUTH_H

#include <stddef.h>

enum auth_scope { AUTH_SCOPE_READ = 1, AUTH_SCOPE_WRITE = 2 };

#define AUTH_NAME_MAX 65 /* longest token name, bytes with the NUL */

struct auth;

/* Parses a token list (see above) into *out (caller frees with auth_free()). An empty list gives
 * a struct auth with no tokens. On a bad list returns HC_EINVAL and writes the reason into why
 * (the entry's position and name, never a token); HC_ENOMEM when out of memory. */
int auth_parse(const char *text, struct auth **out, char *why, size_t whylen);

/* Parses the list `text` (NULL: none) followed by the list in the file at `path` (NULL: none,
 * at most 1 MiB) into *out, as auth_parse() does. A file that cannot be read gives HC_EIO with
 * the reason in why. */
int auth_load(const char *text, const char *path, struct auth **out, char *why, size_t whylen);

/* Number of tokens (0 for NULL). */
size_t auth_count(struct auth *a);

/*
 * Checks an Authorization header value (NULL when absent) for a route that needs `need`.
 * Returns HC_OK and the token's name into name_out (AUTH_NAME_MAX bytes, may be NULL);
 * HC_EUNAUTHORIZED when the header is missing, not "Bearer <token>", or the token is unknown;
 * HC_EFORBIDDEN when the token is known but its scope is read and the route needs write (the
 * name is still set).
 */
int auth_check(struct auth *a, const char *authorization, enum auth_scope need, char *name_out);

/* Moves the tokens of `fresh` into `a` (a reload) and frees `fresh`. */
void auth_replace(struct auth *a, struct auth *fresh);

/* Frees the list. NULL is a no-op. */
void auth_free(struct auth *a);

#endif
