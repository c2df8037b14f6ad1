/*
 * tls.c: the certificate and key behind HTTPS, swappable at run time (see tls.h).
 *
 * Organisation: file reading and checks (a chain must import as GnuTLS pcerts, a key as a
 * privkey, and the pair must be accepted together by gnutls_certificate_set_x509_key_mem2(),
 * which rejects a key that does not match the certificate), then load/reload, which swap the PEM
 * text under `lock`, then the per-handshake retrieve callback, which imports copies under the
 * same lock.
 */
#include "server/tls.h"

#include <errno.h>
#include <gnutls/x509.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "server/error.h"

#define TLS_MAX_CHAIN 16        /* certificates in one chain */
#define TLS_MAX_FILE  (1 << 20) /* largest certificate or key file */

struct tls {
    pthread_mutex_t lock; /* guards cert and key */
    char *cert_path;      /* owned */
    char *key_path;       /* owned */
    gnutls_datum_t cert;  /* PEM chain (gnutls_malloc()ed), swapped by reload */
    gnutls_datum_t key;   /* PEM key (gnutls_malloc()ed), swapped by reload */
};

/* The process's certificate, for the callback (which gets no user pointer). */
static struct tls *current;

static int read_file(const char *path, gnutls_datum_t *out, char *why, size_t whylen)
{
    int rc = gnutls_load_file(path, out);

    if (rc < 0) {
        snprintf(why, whylen, "cannot read %s: %s", path,
                 rc == GNUTLS_E_FILE_ERROR ? strerror(errno ? errno : ENOENT)
                                           : gnutls_strerror(rc));
        return HC_EIO;
    }
    if (out->size > TLS_MAX_FILE) {
        snprintf(why, whylen, "%s is larger than %d bytes", path, TLS_MAX_FILE);
        gnutls_free(out->data);
        out->data = NULL;
        return HC_EINVAL;
    }
    return HC_OK;
}

/* Imports a PEM chain into pcerts (caller deinits *n of them). */
static int import_chain(const gnutls_datum_t *pem, gnutls_pcert_st *pcerts, unsigned *n)
{
    *n = TLS_MAX_CHAIN;
    return gnutls_pcert_list_import_x509_raw(pcerts, n, pem, GNUTLS_X509_FMT_PEM, 0);
}

static int check_chain(const gnutls_datum_t *pem, const char *path, char *why, size_t whylen)
{
    gnutls_pcert_st pcerts[TLS_MAX_CHAIN];
    unsigned n = 0;
    int rc = import_chain(pem, pcerts, &n);

    if (rc < 0 || n == 0) {
        snprintf(why, whylen, "%s holds no usable PEM certificate: %s", path,
                 rc < 0 ? gnutls_strerror(rc) : "empty");
        return HC_EINVAL;
    }
    for (unsigned i = 0; i < n; i++)
        gnutls_pcert_deinit(&pcerts[i]);
    return HC_OK;
}

static int import_key(const gnutls_datum_t *pem, gnutls_privkey_t *out)
{
    int rc = gnutls_privkey_init(out);

    if (rc < 0)
        return rc;
    rc = gnutls_privkey_import_x509_raw(*out, pem, GNUTLS_X509_FMT_PEM, NULL, 0);
    if (rc < 0) {
        gnutls_privkey_deinit(*out);
        *out = NULL;
    }
    return rc;
}

static int check_key(const gnutls_datum_t *pem, const char *path, char *why, size_t whylen)
{
    gnutls_privkey_t key = NULL;
    int rc = import_key(pem, &key);

    if (rc < 0) {
        snprintf(why, whylen, "%s holds no usable unencrypted PEM private key: %s", path,
                 gnutls_strerror(rc));
        return HC_EINVAL;
    }
    gnutls_privkey_deinit(key);
    return HC_OK;
}

int tls_check_cert_file(const char *path, char *why, size_t whylen)
{
    gnutls_datum_t d = {NULL, 0};
    int err = read_file(path, &d, why, whylen);

    if (err == HC_OK)
        err = check_chain(&d, path, why, whylen);
    gnutls_free(d.data);
    return err == HC_OK ? 0 : -1;
}

int tls_check_key_file(const char *path, char *why, size_t whylen)
{
    gnutls_datum_t d = {NULL, 0};
    int err = read_file(path, &d, why, whylen);

    if (err == HC_OK)
        err = check_key(&d, path, why, whylen);
    if (d.data)
        gnutls_memset(d.data, 0, d.size);
    gnutls_free(d.data);
    return err == HC_OK ? 0 : -1;
}

/* Reads and checks both files, and that the key belongs to the certificate. */
static int read_pair(const char *cert_path, const char *key_path, gnutls_datum_t *cert,
                     gnutls_datum_t *key, char *err, size_t errlen)
{
    gnutls_certificate_credentials_t cred = NULL;
    int e, rc;

    e = read_file(cert_path, cert, err, errlen);
    if (e == HC_OK)
        e = check_chain(cert, cert_path, err, errlen);
    if (e == HC_OK)
        e = read_file(key_path, key, err, errlen);
    if (e == HC_OK)
        e = check_key(key, key_path, err, errlen);
    if (e == HC_OK && gnutls_certificate_allocate_credentials(&cred) < 0)
        e = HC_ENOMEM;
    if (e == HC_OK) {
        rc = gnutls_certificate_set_x509_key_mem2(cred, cert, key, GNUTLS_X509_FMT_PEM, NULL, 0);
        if (rc < 0) {
            snprintf(err, errlen, "the key in %s does not go with the certificate in %s: %s",
                     key_path, cert_path, gnutls_strerror(rc));
            e = HC_EINVAL;
        }
    }
    if (cred)
        gnutls_certificate_free_credentials(cred);
    if (e != HC_OK) {
        gnutls_free(cert->data);
        if (key->data)
            gnutls_memset(key->data, 0, key->size);
        gnutls_free(key->data);
        cert->data = key->data = NULL;
    }
    return e;
}

static void datum_clear(gnutls_datum_t *d, int secret)
{
    if (d->data && secret)
        gnutls_memset(d->data, 0, d->size);
    gnutls_free(d->data);
    d->data = NULL;
    d->size = 0;
}

int tls_load(const char *cert_path, const char *key_path, struct tls **out, char *err,
             size_t errlen)
{
    struct tls *t = calloc(1, sizeof *t);
    int e;

    *out = NULL;
    if (!t)
        return HC_ENOMEM;
    pthread_mutex_init(&t->lock, NULL);
    t->cert_path = strdup(cert_path);
    t->key_path = strdup(key_path);
    e = t->cert_path && t->key_path ? HC_OK : HC_ENOMEM;
    if (e == HC_OK)
        e = read_pair(cert_path, key_path, &t->cert, &t->key, err, errlen);
    if (e != HC_OK) {
        tls_free(t);
        return e;
    }
    current = t;
    *out = t;
    return HC_OK;
}

int tls_reload(struct tls *t, char *err, size_t errlen)
{
    gnutls_datum_t cert = {NULL, 0}, key = {NULL, 0}, old_cert, old_key;
    int e = read_pair(t->cert_path, t->key_path, &cert, &key, err, errlen);

    if (e != HC_OK)
        return e;
    pthread_mutex_lock(&t->lock);
    old_cert = t->cert;
    old_key = t->key;
    t->cert = cert;
    t->key = key;
    pthread_mutex_unlock(&t->lock);
    datum_clear(&old_cert, 0);
    datum_clear(&old_key, 1);
    return HC_OK;
}

void tls_describe(struct tls *t, char *subject, size_t slen, char *not_after, size_t nlen)
{
    gnutls_x509_crt_t crt = NULL;
    size_t n = slen;
    time_t exp;
    struct tm tm;

    subject[0] = not_after[0] = '\0';
    pthread_mutex_lock(&t->lock);
    if (gnutls_x509_crt_init(&crt) == 0 &&
        gnutls_x509_crt_import(crt, &t->cert, GNUTLS_X509_FMT_PEM) == 0) {
        if (gnutls_x509_crt_get_dn(crt, subject, &n) < 0)
            subject[0] = '\0';
        exp = gnutls_x509_crt_get_expiration_time(crt);
        if (exp != (time_t)-1 && gmtime_r(&exp, &tm))
            strftime(not_after, nlen, "%Y-%m-%dT%H:%M:%SZ", &tm);
    }
    pthread_mutex_unlock(&t->lock);
    if (crt)
        gnutls_x509_crt_deinit(crt);
}

int tls_retrieve(gnutls_session_t session, const struct gnutls_cert_retr_st *info,
                 gnutls_pcert_st **certs, unsigned int *pcert_length, gnutls_ocsp_data_st **ocsp,
                 unsigned int *ocsp_length, gnutls_privkey_t *privkey, unsigned int *flags)
{
    struct tls *t = current;
    gnutls_pcert_st *chain = NULL;
    gnutls_privkey_t key = NULL;
    unsigned n = 0;
    int rc = -1;

    (void)session;
    (void)info;
    *certs = NULL;
    *pcert_length = 0;
    *ocsp = NULL;
    *ocsp_length = 0;
    *privkey = NULL;
    *flags = 0;
    if (!t)
        return -1;
    /* gnutls_malloc(): GnuTLS frees the array itself under GNUTLS_CERT_RETR_DEINIT_ALL. */
    chain = gnutls_malloc(TLS_MAX_CHAIN * sizeof *chain);
    if (!chain)
        return -1;
    pthread_mutex_lock(&t->lock);
    if (import_chain(&t->cert, chain, &n) < 0)
        n = 0;
    if (n > 0 && import_key(&t->key, &key) >= 0)
        rc = 0;
    pthread_mutex_unlock(&t->lock);
    if (rc != 0) {
        for (unsigned i = 0; i < n; i++)
            gnutls_pcert_deinit(&chain[i]);
        gnutls_free(chain);
        return -1;
    }
    *certs = chain;
    *pcert_length = n;
    *privkey = key;
    *flags = GNUTLS_CERT_RETR_DEINIT_ALL;
    return 0;
}

void tls_free(struct tls *t)
{
    if (!t)
        return;
    if (current == t)
        current = NULL;
    datum_clear(&t->cert, 0);
    datum_clear(&t->key, 1);
    free(t->cert_path);
    free(t->key_path);
    pthread_mutex_destroy(&t->lock);
    free(t);
}
