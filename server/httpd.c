/*
 * httpd.c: libmicrohttpd glue (see httpd.h for the request life cycle).
 *
 * Organisation: the daemon (start, stop) and its two callbacks (on_request, the access
 * handler called once per chunk; on_completed, the one place a request is freed and logged), then
 * the response helpers, which all end in queue().
 *
 * Threading: by default a pool of cfg->http_threads threads, each with its own epoll loop over
 * its share of the connections, so an idle or slow connection costs no thread; a handler that
 * blocks briefly on the job store stalls only the connections of its thread.
 * --http-threads 0 gives a thread per connection instead. Connections are limited (in total and
 * per IP) and time out when idle (MHD) or when a request takes too long to arrive (the reaper).
 *
 * The reaper: NOTIFY_CONNECTION puts every connection into a list (struct conn_track, its
 * socket context) with a deadline, now + request_timeout_s; the last callback of a request
 * (body complete) clears it, and the request's completion sets it again for the next request on
 * the connection. A thread wakes every REAPER_TICK_MS and shutdown()s the socket of every
 * connection past its deadline; MHD then sees the connection fail and closes it on its own
 * thread. The list lock is held while a socket is shut down and while a closed connection
 * leaves the list (MHD closes the fd only after that notification), so the reaper never touches
 * a reused descriptor.
 */
#include "server/httpd.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "routes/routes.h"
#include "server/app.h"
#include "server/error.h"
#include "server/log.h"
#include "server/metrics.h"
#include "server/sys.h"
#include "server/tls.h"

#define REAPER_TICK_MS 250 /* how often the reaper looks for late requests */

/* One open connection, for the reaper (MHD's socket context; freed when the connection closes). */
struct conn_track {
    struct conn_track *prev, *next; /* in httpd.conns */
    MHD_socket fd;                  /* the connection's socket (MHD's) */
    int64_t deadline_ms;            /* monotonic time its request must be in by; 0: none */
};

struct httpd {
    struct MHD_Daemon *daemon; /* owned */
    struct app *app;           /* borrowed */
    int port;                  /* the port bound */
    pthread_mutex_t lock;      /* guards conns, stopping, reaped */
    pthread_cond_t wake;       /* wakes the reaper to stop */
    struct conn_track conns;   /* list head of open connections */
    pthread_t reaper;          /* the reaper thread */
    int reaper_started;        /* 1 once `reaper` runs */
    int stopping;              /* 1: the reaper must return */
    unsigned long reaped;      /* connections closed for a late request */
};

static void mhd_log(void *cls, const char *fmt, va_list ap)
{
    char text[512];

    (void)cls;
    vsnprintf(text, sizeof text, fmt, ap);
    text[strcspn(text, "\n")] = '\0';
    log_warn("libmicrohttpd", "detail", text, NULL);
}

/* An X-Request-Id from the client is echoed when it is short and plain; otherwise a UUID. */
static void set_request_id(struct request *req)
{
    const char *given = MHD_lookup_connection_value(req->conn, MHD_HEADER_KIND, "X-Request-Id");
    size_t n = given ? strlen(given) : 0;

    if (n > 0 && n < sizeof req->request_id &&
        strspn(given, "abcdefghijklmnopqrstuvwxyz"
                      "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
                      "0123456789._-:") == n) {
        memcpy(req->request_id, given, n + 1);
        return;
    }
    sys_uuid(req->request_id);
}

/* The real monotonic clock in microseconds (request latency for the metrics; not a seam). */
static int64_t mono_us(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static struct request *request_new(struct httpd *h, struct MHD_Connection *conn, const char *url,
                                   const char *method)
{
    struct request *req = calloc(1, sizeof *req);

    if (!req)
        return NULL;
    req->path = strdup(url);
    if (!req->path) {
        free(req);
        return NULL;
    }
    req->conn = conn;
    req->app = h->app;
    snprintf(req->method, sizeof req->method, "%s", method);
    req->start_ms = sys_mono_ms();
    req->start_us = mono_us();
    buf_init(&req->body, 0);
    set_request_id(req);
    return req;
}

static void request_free(struct request *req)
{
    buf_free(&req->body);
    json_decref(req->json);
    json_decref(req->pending);
    free(req->path);
    free(req);
}

/* Sets the reaper deadline of the connection carrying `conn` (0: none). */
static void conn_deadline(struct httpd *h, struct MHD_Connection *conn, int64_t deadline_ms)
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    struct conn_track *t = ci ? ci->socket_context : NULL;

    if (!t)
        return;
    pthread_mutex_lock(&h->lock);
    t->deadline_ms = deadline_ms;
    pthread_mutex_unlock(&h->lock);
}

static int64_t next_deadline(const struct httpd *h)
{
    return sys_mono_ms() + (int64_t)h->app->cfg->request_timeout_s * 1000;
}

/* NOTIFY_CONNECTION: a connection enters the reaper's list when it opens and leaves it when it
 * closes (before MHD closes its socket). */
static void on_connection(void *cls, struct MHD_Connection *conn, void **socket_context,
                          enum MHD_ConnectionNotificationCode code)
{
    struct httpd *h = cls;
    struct conn_track *t = *socket_context;

    if (code == MHD_CONNECTION_NOTIFY_STARTED) {
        const union MHD_ConnectionInfo *ci =
            MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
        t = calloc(1, sizeof *t);
        if (!t || !ci) {
            free(t); /* untracked: MHD's idle timeout still applies */
            return;
        }
        t->fd = ci->connect_fd;
        pthread_mutex_lock(&h->lock);
        t->deadline_ms = next_deadline(h);
        t->next = h->conns.next;
        t->prev = &h->conns;
        h->conns.next->prev = t;
        h->conns.next = t;
        pthread_mutex_unlock(&h->lock);
        *socket_context = t;
    } else if (t) {
        pthread_mutex_lock(&h->lock);
        t->prev->next = t->next;
        t->next->prev = t->prev;
        pthread_mutex_unlock(&h->lock);
        free(t);
        *socket_context = NULL;
    }
}

static void *reaper_main(void *arg)
{
    struct httpd *h = arg;

    pthread_mutex_lock(&h->lock);
    while (!h->stopping) {
        struct timespec until;
        int64_t now = sys_mono_ms();
        unsigned long n = 0;

        for (struct conn_track *t = h->conns.next; t != &h->conns; t = t->next) {
            if (t->deadline_ms && now > t->deadline_ms) {
                shutdown(t->fd, SHUT_RDWR); /* MHD's next read fails and it closes it */
                t->deadline_ms = 0;
                n++;
            }
        }
        h->reaped += n;
        if (n) {
            char count[24];
            snprintf(count, sizeof count, "%lu", n);
            log_warn("connections closed: request not received in time", "count", count, NULL);
        }
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_nsec += REAPER_TICK_MS * 1000000L;
        if (until.tv_nsec >= 1000000000L) {
            until.tv_sec++;
            until.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&h->wake, &h->lock, &until);
    }
    pthread_mutex_unlock(&h->lock);
    return NULL;
}

/* MHD's access handler: called on the headers, once per body chunk, and once at the end. */
static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version, const char *upload_data,
                                  size_t *upload_data_size, void **con_cls)
{
    struct request *req = *con_cls;

    (void)version;
    if (!req) {
        enum reply_result r;

        req = request_new(cls, conn, url, method);
        if (!req)
            return MHD_NO;
        *con_cls = req; /* freed in on_completed() */
        r = route_begin_or_reply(req);
        return r == REPLY_FATAL ? MHD_NO : MHD_YES;
    }
    if (*upload_data_size > 0) {
        req->body_seen += *upload_data_size;
        if (!req->status && !req->body_too_big &&
            buf_append(&req->body, upload_data, *upload_data_size) != 0)
            req->body_too_big = 1;
        *upload_data_size = 0;
        /* Past the cap the rest is read and dropped, so the 413 reaches the client; a client
         * that keeps sending far beyond it is cut off. */
        return req->body_seen > (uint64_t)req->body.max + HTTPD_DISCARD_LIMIT ? MHD_NO : MHD_YES;
    }
    if (req->status)
        return MHD_YES;          /* answered at the first callback */
    conn_deadline(cls, conn, 0); /* the request is in; answering it has no deadline */
    return route_dispatch(req);
}

/* NOTIFY_COMPLETED: the request's one log line and its one free. */
static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    struct request *req = *con_cls;
    char status[8], ms[24];

    conn_deadline(cls, conn, next_deadline(cls)); /* the next request on this connection */
    if (!req)
        return;
    snprintf(status, sizeof status, "%u", req->status);
    snprintf(ms, sizeof ms, "%lld", (long long)(sys_mono_ms() - req->start_ms));
    log_msg(req->status >= 500 || toe != MHD_REQUEST_TERMINATED_COMPLETED_OK ? LOG_WARN : LOG_INFO,
            "request", "method", req->method, "path", req->path, "status", status, "ms", ms,
            "request_id", req->request_id, "outcome",
            toe == MHD_REQUEST_TERMINATED_COMPLETED_OK ? "completed" : "aborted",
            req->principal[0] ? "token" : NULL, req->principal, NULL);
    /* The route's pattern, never the raw path, is the label: ids would make unbounded series. */
    if (req->status)
        metrics_http_observe(req->method, req->route ? req->route->path : NULL, req->status,
                             mono_us() - req->start_us);
    request_free(req);
    *con_cls = NULL;
}

/* The options every daemon gets, TLS or not (a macro: MHD takes them as varargs). */
#define COMMON_OPTIONS(h, sa, cfg)                                                                 \
    MHD_OPTION_SOCK_ADDR, sa, MHD_OPTION_NOTIFY_COMPLETED, on_completed, h,                        \
        MHD_OPTION_NOTIFY_CONNECTION, on_connection, h, MHD_OPTION_CONNECTION_LIMIT,               \
        (unsigned)(cfg)->max_connections, MHD_OPTION_PER_IP_CONNECTION_LIMIT,                      \
        (unsigned)(cfg)->max_connections_per_ip, MHD_OPTION_CONNECTION_TIMEOUT,                    \
        (unsigned)(cfg)->connection_timeout_s

static struct MHD_Daemon *daemon_start(struct httpd *h, const struct sockaddr *sa, unsigned flags)
{
    const struct config *cfg = h->app->cfg;
    /* Each pool thread takes an equal share of the connection limit, so no more threads than
     * connections. */
    int threads =
        cfg->http_threads < cfg->max_connections ? cfg->http_threads : cfg->max_connections;
    /* THREAD_POOL_SIZE only in pool mode (MHD refuses it with a thread per connection). */
    struct MHD_OptionItem pool[] = {
        {threads > 0 ? MHD_OPTION_THREAD_POOL_SIZE : MHD_OPTION_END, (intptr_t)threads, NULL},
        {MHD_OPTION_END, 0, NULL}};

    if (h->app->tls)
        return MHD_start_daemon(flags | MHD_USE_TLS, (uint16_t)cfg->listen_port, NULL, NULL,
                                on_request, h, MHD_OPTION_EXTERNAL_LOGGER, mhd_log, NULL,
                                MHD_OPTION_HTTPS_CERT_CALLBACK2, tls_retrieve,
                                COMMON_OPTIONS(h, sa, cfg), MHD_OPTION_ARRAY, pool, MHD_OPTION_END);
    return MHD_start_daemon(flags, (uint16_t)cfg->listen_port, NULL, NULL, on_request, h,
                            MHD_OPTION_EXTERNAL_LOGGER, mhd_log, NULL, COMMON_OPTIONS(h, sa, cfg),
                            MHD_OPTION_ARRAY, pool, MHD_OPTION_END);
}

int httpd_start(struct app *app, struct httpd **out)
{
    const struct config *cfg = app->cfg;
    struct httpd *h = calloc(1, sizeof *h);
    struct sockaddr_in sin;
    struct sockaddr_in6 sin6;
    const struct sockaddr *sa;
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ITC | MHD_USE_ERROR_LOG;
    const union MHD_DaemonInfo *info;

    *out = NULL;
    if (!h)
        return HC_ENOMEM;
    if (app->tls && (MHD_is_feature_supported(MHD_FEATURE_TLS) != MHD_YES ||
                     MHD_is_feature_supported(MHD_FEATURE_HTTPS_CERT_CALLBACK2) != MHD_YES)) {
        log_error("this libmicrohttpd has no TLS certificate callback; HTTPS is not available",
                  NULL);
        free(h);
        return HC_EIO;
    }
    flags |= cfg->http_threads > 0 ? MHD_USE_EPOLL : MHD_USE_THREAD_PER_CONNECTION | MHD_USE_POLL;
    h->app = app;
    h->conns.next = h->conns.prev = &h->conns;
    pthread_mutex_init(&h->lock, NULL);
    pthread_cond_init(&h->wake, NULL);
    memset(&sin, 0, sizeof sin);
    memset(&sin6, 0, sizeof sin6);
    if (cfg->listen_ipv6) {
        sin6.sin6_family = AF_INET6;
        sin6.sin6_port = htons((uint16_t)cfg->listen_port);
        inet_pton(AF_INET6, cfg->listen_host, &sin6.sin6_addr);
        sa = (const struct sockaddr *)&sin6;
        flags |= MHD_USE_IPv6;
    } else {
        sin.sin_family = AF_INET;
        sin.sin_port = htons((uint16_t)cfg->listen_port);
        inet_pton(AF_INET, cfg->listen_host, &sin.sin_addr);
        sa = (const struct sockaddr *)&sin;
    }
    h->daemon = daemon_start(h, sa, flags);
    if (!h->daemon) {
        log_error("cannot listen", "listen", cfg->listen, "error", strerror(errno), NULL);
        httpd_stop(h);
        return HC_EIO;
    }
    if (pthread_create(&h->reaper, NULL, reaper_main, h) != 0) {
        log_error("cannot start the connection reaper", NULL);
        httpd_stop(h);
        return HC_EIO;
    }
    h->reaper_started = 1;
    info = MHD_get_daemon_info(h->daemon, MHD_DAEMON_INFO_BIND_PORT);
    h->port = info ? info->port : cfg->listen_port;
    *out = h;
    return HC_OK;
}

int httpd_port(const struct httpd *h)
{
    return h->port;
}

void httpd_stop(struct httpd *h)
{
    if (!h)
        return;
    /* No MHD_quiesce_daemon first: in libmicrohttpd 0.9.75 it races the epoll worker threads,
     * which may take the listening socket out of their epoll set themselves, and then panics
     * ("Failed to remove listen FD from epoll set", seen under TSan in test_athena_engine).
     * MHD_stop_daemon alone stops accepting and closes every connection. */
    if (h->daemon)
        MHD_stop_daemon(h->daemon); /* closes every connection: the list is empty after */
    if (h->reaper_started) {
        pthread_mutex_lock(&h->lock);
        h->stopping = 1;
        pthread_cond_signal(&h->wake);
        pthread_mutex_unlock(&h->lock);
        pthread_join(h->reaper, NULL);
    }
    pthread_cond_destroy(&h->wake);
    pthread_mutex_destroy(&h->lock);
    free(h);
}

/* Queues `resp` (consumed: MHD keeps its own reference until the response is sent). */
static enum MHD_Result queue(struct request *req, unsigned status, struct MHD_Response *resp)
{
    enum MHD_Result ret;

    if (!resp)
        return MHD_NO;
    MHD_add_response_header(resp, "X-Request-Id", req->request_id);
    req->status = status;
    ret = MHD_queue_response(req->conn, status, resp);
    MHD_destroy_response(resp);
    return ret;
}

static int is_get(const struct request *req)
{
    return strcmp(req->method, "GET") == 0 || strcmp(req->method, "HEAD") == 0;
}

/* Does an If-None-Match header list `etag` (or "*")? Weak prefixes are ignored (RFC 9110
 * weak comparison). */
static int etag_matches(const struct request *req, const char *etag)
{
    const char *inm =
        MHD_lookup_connection_value(req->conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_IF_NONE_MATCH);
    size_t elen = strlen(etag);

    if (!inm)
        return 0;
    while (*inm) {
        size_t n;
        inm += strspn(inm, " \t,");
        if (strncmp(inm, "W/", 2) == 0)
            inm += 2;
        n = strcspn(inm, " \t,");
        if ((n == 1 && inm[0] == '*') || (n == elen && strncmp(inm, etag, n) == 0))
            return 1;
        inm += n;
    }
    return 0;
}

static void etag_of(const void *data, size_t len, char out[24])
{
    const unsigned char *p = data;
    uint64_t h = 1469598103934665603ULL; /* FNV-1a 64 */

    for (size_t i = 0; i < len; i++) {
        h ^= p[i];
        h *= 1099511628211ULL;
    }
    snprintf(out, 24, "\"%016llx\"", (unsigned long long)h);
}

static enum MHD_Result reply_not_modified(struct request *req, const char *etag)
{
    struct MHD_Response *resp = MHD_create_response_from_buffer(0, NULL, MHD_RESPMEM_PERSISTENT);

    if (resp)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_ETAG, etag);
    return queue(req, MHD_HTTP_NOT_MODIFIED, resp);
}

/* Sends malloc()ed text (taken: MHD_RESPMEM_MUST_FREE means MHD free()s it). */
static enum MHD_Result reply_text(struct request *req, unsigned status, char *text,
                                  const char *content_type, const char *hname, const char *hval,
                                  int with_etag)
{
    struct MHD_Response *resp;
    char etag[24];
    size_t len = strlen(text);

    if (with_etag) {
        etag_of(text, len, etag);
        if (etag_matches(req, etag)) {
            free(text);
            return reply_not_modified(req, etag);
        }
    }
    resp = MHD_create_response_from_buffer(len, text, MHD_RESPMEM_MUST_FREE);
    if (!resp) {
        free(text);
        return MHD_NO;
    }
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, content_type);
    if (with_etag)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_ETAG, etag);
    if (hname)
        MHD_add_response_header(resp, hname, hval);
    return queue(req, status, resp);
}

enum MHD_Result reply_json(struct request *req, unsigned status, json_t *doc, const char *hname,
                           const char *hval)
{
    char *text = doc ? json_dumps(doc, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;

    json_decref(doc);
    if (!text)
        return reply_problem(req, HC_ENOMEM, NULL);
    return reply_text(req, status, text, "application/json", hname, hval,
                      status == MHD_HTTP_OK && is_get(req));
}

enum MHD_Result reply_problem_doc(struct request *req, json_t *problem, const char *hname,
                                  const char *hval)
{
    json_int_t status = json_integer_value(json_object_get(problem, "status"));
    char *text = problem ? json_dumps(problem, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;

    json_decref(problem);
    if (!text) {
        /* Out of memory: a fixed body needs no allocation. */
        static const char oom[] = "{\"type\":\"" HC_PROBLEM_TYPE_BASE "out-of-memory\","
                                  "\"title\":\"Out of memory\",\"status\":500}";
        struct MHD_Response *resp = MHD_create_response_from_buffer(
            sizeof oom - 1, (void *)(uintptr_t)oom, MHD_RESPMEM_PERSISTENT);
        if (resp)
            MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "application/problem+json");
        return queue(req, 500, resp);
    }
    if (status < 400 || status > 599)
        status = 500;
    return reply_text(req, (unsigned)status, text, "application/problem+json", hname, hval, 0);
}

enum MHD_Result reply_problem(struct request *req, int err, const char *detail)
{
    return reply_problem_doc(req, hc_problem_new(err, detail), NULL, NULL);
}

enum MHD_Result reply_file(struct request *req, const char *path, const char *content_type,
                           int missing_err)
{
    struct MHD_Response *resp;
    struct stat st;
    char etag[64];
    int fd = open(path, O_RDONLY | O_CLOEXEC);

    if (fd < 0)
        return reply_problem(req, errno == ENOENT ? missing_err : HC_EIO, NULL);
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return reply_problem(req, HC_EIO, NULL);
    }
    snprintf(etag, sizeof etag, "\"%llx-%llx\"", (unsigned long long)st.st_size,
             (unsigned long long)st.st_mtim.tv_sec * 1000000000ULL +
                 (unsigned long long)st.st_mtim.tv_nsec);
    if (etag_matches(req, etag)) {
        close(fd);
        return reply_not_modified(req, etag);
    }
    /* MHD owns fd from here on and closes it when the response is destroyed. */
    resp = MHD_create_response_from_fd((uint64_t)st.st_size, fd);
    if (!resp) {
        close(fd);
        return MHD_NO;
    }
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, content_type);
    MHD_add_response_header(resp, MHD_HTTP_HEADER_ETAG, etag);
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-cache");
    return queue(req, MHD_HTTP_OK, resp);
}

enum MHD_Result reply_static(struct request *req, const void *data, size_t len,
                             const char *content_type)
{
    return reply_static_cached(req, data, len, content_type, NULL);
}

enum MHD_Result reply_owned(struct request *req, char *data, size_t len, const char *content_type)
{
    /* MUST_FREE: data was malloc()ed and MHD free()s it with the response. */
    struct MHD_Response *resp = MHD_create_response_from_buffer(len, data, MHD_RESPMEM_MUST_FREE);

    if (!resp) {
        free(data);
        return MHD_NO;
    }
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, content_type);
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
    return queue(req, MHD_HTTP_OK, resp);
}

enum MHD_Result reply_static_cached(struct request *req, const void *data, size_t len,
                                    const char *content_type, const char *cache_control)
{
    struct MHD_Response *resp;
    char etag[24];

    etag_of(data, len, etag);
    if (etag_matches(req, etag))
        return reply_not_modified(req, etag);
    /* PERSISTENT: the bytes are static and outlive the response. */
    resp = MHD_create_response_from_buffer(len, (void *)(uintptr_t)data, MHD_RESPMEM_PERSISTENT);
    if (!resp)
        return MHD_NO;
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, content_type);
    MHD_add_response_header(resp, MHD_HTTP_HEADER_ETAG, etag);
    if (cache_control)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, cache_control);
    return queue(req, MHD_HTTP_OK, resp);
}
