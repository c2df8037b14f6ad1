/*
 * tls: the service's certificate and key (--tls-cert, --tls-key), handed to libmicrohttpd's
 * GnuTLS through a certificate callback so SIGHUP can swap them without closing the listener.
 *
 * How the reload works: MHD is started with MHD_OPTION_HTTPS_CERT_CALLBACK2 (GnuTLS's
 * gnutls_certificate_retrieve_function3). For every handshake the callback imports the current
 * PEM certificate chain and key under a mutex and returns fresh copies flagged
 * GNUTLS_CERT_RETR_DEINIT_ALL, so GnuTLS frees them when the session no longer needs them.
 * tls_reload() reads and checks the files, then swaps the PEM text under the same mutex: new
 * handshakes get the new certificate, sessions already open keep theirs, the listening socket is
 * never touched. A reload that fails (unreadable file, bad PEM, key not matching) keeps the old
 * certificate. The callback has no user pointer, so the one loaded struct tls is process-wide.
 */
#ifndef HCPIPE_TLS_H
#define HCPIPE_TLS_H

#include <gnutls/abstract.h>
#include <gnutls/gnutls.h>
#include <stddef.h>

struct tls;

/* Checks that `path` holds a PEM certificate (chain) / a PEM private key GnuTLS can use.
 * Returns 0, or -1 with the reason in why (never the file's bytes). */
int tls_check_cert_file(const char *path, char *why, size_t whylen);
int tls_check_key_file(const char *path, char *why, size_t whylen);

/* Loads the pair and makes it the process's certificate (only one struct tls may exist). On
 * error returns HC_EINVAL (bad or mismatched files) or HC_EIO (unreadable) with a message naming
 * the file in err, and *out stays NULL. Caller frees with tls_free() after the daemon stopped. */
int tls_load(const char *cert_path, const char *key_path, struct tls **out, char *err,
             size_t errlen);

/* Re-reads the same two files; on success new handshakes use them. On failure the old pair stays
 * and err says why. Returns HC_OK, HC_EINVAL or HC_EIO. */
int tls_reload(struct tls *t, char *err, size_t errlen);

/* The certificate's subject and notAfter (UTC, e.g. "2027-11-27T23:59:59Z"), for the log. */
void tls_describe(struct tls *t, char *subject, size_t slen, char *not_after, size_t nlen);

/* The GnuTLS retrieve function given to MHD_OPTION_HTTPS_CERT_CALLBACK2: fresh copies of the
 * current chain and key, which GnuTLS frees (GNUTLS_CERT_RETR_DEINIT_ALL). Returns 0 or -1. */
int tls_retrieve(gnutls_session_t session, const struct gnutls_cert_retr_st *info,
                 gnutls_pcert_st **certs, unsigned int *pcert_length, gnutls_ocsp_data_st **ocsp,
                 unsigned int *ocsp_length, gnutls_privkey_t *privkey, unsigned int *flags);

/* Frees it. NULL is a no-op. */
void tls_free(struct tls *t);

#endif
