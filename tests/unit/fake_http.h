/*
 * fake_http.h: a scripted loopback HTTP/1.1 server for unit tests (header-only, all static).
 *
 * fake_start() binds 127.0.0.1 on an ephemeral port and serves from one thread with poll():
 * any number of keep-alive connections, each request answered with the next scripted response
 * (the last one repeats). A response may instead hang (never answered) or close the connection.
 * Every request is recorded (head and body), and the number of accepted TCP connections is
 * counted, so tests can check connection reuse, headers and retries.
 */
#ifndef HCPIPE_TEST_FAKE_HTTP_H
#define HCPIPE_TEST_FAKE_HTTP_H

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#define FAKE_MAX_RESP  16
#define FAKE_MAX_REQ   32
#define FAKE_MAX_CONNS 16
#define FAKE_HEAD_MAX  8192
#define FAKE_BODY_MAX  (1 << 20)

struct fake_resp {
    int status;          /* HTTP status */
    const char *headers; /* extra header lines, each ending in "\r\n", or NULL */
    const char *body;    /* body, or NULL */
    int hang;            /* 1: read the request but never answer */
    int close;           /* 1: close the connection without answering */
};

struct fake_req {
    char head[FAKE_HEAD_MAX]; /* request line and headers, NUL-terminated */
    char *body;               /* malloc'ed, NUL-terminated */
    size_t body_len;
};

struct fake_conn {
    int fd;
    char *in; /* buffered input */
    size_t in_len;
    int hung;
};

struct fake_server {
    int lfd;
    int port;
    pthread_t thread;
    pthread_mutex_t mu;
    struct fake_resp resp[FAKE_MAX_RESP];
    int n_resp;
    int next_resp;
    struct fake_req reqs[FAKE_MAX_REQ];
    int n_reqs;
    int n_conns;
    struct fake_conn conns[FAKE_MAX_CONNS];
    int stop_pipe[2];
};

static void fake_send_all(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL);

        if (w <= 0)
            return;
        p += w;
        n -= (size_t)w;
    }
}

static void fake_conn_close(struct fake_conn *c)
{
    if (c->fd >= 0)
        close(c->fd);
    free(c->in);
    c->fd = -1;
    c->in = NULL;
    c->in_len = 0;
    c->hung = 0;
}

/* Content-Length of a request head (0 when absent). */
static size_t fake_content_length(const char *head)
{
    const char *p = head;

    while ((p = strchr(p, '\n'))) {
        p++;
        if (strncasecmp(p, "Content-Length:", 15) == 0)
            return (size_t)strtoul(p + 15, NULL, 10);
    }
    return 0;
}

/* Handles every complete request buffered on c. */
static void fake_serve_buffered(struct fake_server *s, struct fake_conn *c)
{
    for (;;) {
        char *end;
        size_t head_len, body_len;
        struct fake_resp r;
        char hdr[1024];
        int is_head;

        if (c->fd < 0 || c->hung || !c->in)
            return;
        end = memmem(c->in, c->in_len, "\r\n\r\n", 4);
        if (!end)
            return;
        head_len = (size_t)(end - c->in) + 4;
        {
            char save = c->in[head_len - 1];

            c->in[head_len - 1] = '\0';
            body_len = fake_content_length(c->in);
            c->in[head_len - 1] = save;
        }
        if (c->in_len < head_len + body_len)
            return;
        is_head = strncmp(c->in, "HEAD ", 5) == 0;
        pthread_mutex_lock(&s->mu);
        if (s->n_reqs < FAKE_MAX_REQ) {
            struct fake_req *q = &s->reqs[s->n_reqs++];
            size_t hl = head_len < FAKE_HEAD_MAX ? head_len : FAKE_HEAD_MAX - 1;

            memcpy(q->head, c->in, hl);
            q->head[hl] = '\0';
            q->body = malloc(body_len + 1);
            memcpy(q->body, c->in + head_len, body_len);
            q->body[body_len] = '\0';
            q->body_len = body_len;
        }
        r = s->resp[s->next_resp < s->n_resp ? s->next_resp : s->n_resp - 1];
        if (s->next_resp < s->n_resp)
            s->next_resp++;
        pthread_mutex_unlock(&s->mu);
        memmove(c->in, c->in + head_len + body_len, c->in_len - head_len - body_len);
        c->in_len -= head_len + body_len;
        if (r.close) {
            fake_conn_close(c);
            return;
        }
        if (r.hang) {
            c->hung = 1;
            return;
        }
        snprintf(hdr, sizeof(hdr), "HTTP/1.1 %d Status\r\nContent-Length: %zu\r\n%s\r\n", r.status,
                 r.body ? strlen(r.body) : 0, r.headers ? r.headers : "");
        fake_send_all(c->fd, hdr, strlen(hdr));
        if (r.body && !is_head)
            fake_send_all(c->fd, r.body, strlen(r.body));
    }
}

static void *fake_thread(void *arg)
{
    struct fake_server *s = arg;

    for (;;) {
        struct pollfd pf[FAKE_MAX_CONNS + 2];
        int map[FAKE_MAX_CONNS + 2];
        int n = 0;

        pf[n].fd = s->stop_pipe[0];
        pf[n].events = POLLIN;
        map[n++] = -1;
        pf[n].fd = s->lfd;
        pf[n].events = POLLIN;
        map[n++] = -1;
        for (int i = 0; i < FAKE_MAX_CONNS; i++) {
            if (s->conns[i].fd >= 0) {
                pf[n].fd = s->conns[i].fd;
                pf[n].events = POLLIN;
                map[n++] = i;
            }
        }
        if (poll(pf, (nfds_t)n, -1) < 0)
            continue;
        if (pf[0].revents)
            break;
        if (pf[1].revents & POLLIN) {
            int fd = accept(s->lfd, NULL, NULL);

            if (fd >= 0) {
                int placed = 0;

                pthread_mutex_lock(&s->mu);
                s->n_conns++;
                pthread_mutex_unlock(&s->mu);
                for (int i = 0; i < FAKE_MAX_CONNS && !placed; i++) {
                    if (s->conns[i].fd < 0) {
                        s->conns[i].fd = fd;
                        placed = 1;
                    }
                }
                if (!placed)
                    close(fd);
            }
        }
        for (int k = 2; k < n; k++) {
            struct fake_conn *c = &s->conns[map[k]];
            char tmp[65536];
            ssize_t got;

            if (!(pf[k].revents & (POLLIN | POLLHUP | POLLERR)))
                continue;
            got = recv(c->fd, tmp, sizeof(tmp), 0);
            if (got <= 0) {
                fake_conn_close(c);
                continue;
            }
            if (c->hung)
                continue;
            c->in = realloc(c->in, c->in_len + (size_t)got + 1);
            memcpy(c->in + c->in_len, tmp, (size_t)got);
            c->in_len += (size_t)got;
            fake_serve_buffered(s, c);
        }
    }
    return NULL;
}

/* Starts a server answering with `resp` (n >= 1, copied). Returns NULL on failure. */
static struct fake_server *fake_start(const struct fake_resp *resp, int n)
{
    struct fake_server *s = calloc(1, sizeof(*s));
    struct sockaddr_in a;
    socklen_t alen = sizeof(a);

    if (!s)
        return NULL;
    memcpy(s->resp, resp, (size_t)n * sizeof(*resp));
    s->n_resp = n;
    for (int i = 0; i < FAKE_MAX_CONNS; i++)
        s->conns[i].fd = -1;
    pthread_mutex_init(&s->mu, NULL);
    s->lfd = socket(AF_INET, SOCK_STREAM, 0);
    memset(&a, 0, sizeof(a));
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = 0;
    if (s->lfd < 0 || bind(s->lfd, (struct sockaddr *)&a, sizeof(a)) != 0 ||
        listen(s->lfd, 16) != 0 || getsockname(s->lfd, (struct sockaddr *)&a, &alen) != 0 ||
        pipe(s->stop_pipe) != 0) {
        if (s->lfd >= 0)
            close(s->lfd);
        free(s);
        return NULL;
    }
    s->port = ntohs(a.sin_port);
    pthread_create(&s->thread, NULL, fake_thread, s);
    return s;
}

static void fake_stop(struct fake_server *s)
{
    if (!s)
        return;
    if (write(s->stop_pipe[1], "x", 1) != 1)
        return;
    pthread_join(s->thread, NULL);
    for (int i = 0; i < FAKE_MAX_CONNS; i++)
        fake_conn_close(&s->conns[i]);
    for (int i = 0; i < s->n_reqs; i++)
        free(s->reqs[i].body);
    close(s->lfd);
    close(s->stop_pipe[0]);
    close(s->stop_pipe[1]);
    pthread_mutex_destroy(&s->mu);
    free(s);
}

static inline int fake_n_reqs(struct fake_server *s)
{
    int n;

    pthread_mutex_lock(&s->mu);
    n = s->n_reqs;
    pthread_mutex_unlock(&s->mu);
    return n;
}

static inline int fake_n_conns(struct fake_server *s)
{
    int n;

    pthread_mutex_lock(&s->mu);
    n = s->n_conns;
    pthread_mutex_unlock(&s->mu);
    return n;
}

/* The value of header `name` in recorded request i, copied into out ("" when absent). */
static inline const char *fake_req_header(struct fake_server *s, int i, const char *name, char *out,
                                          size_t outlen)
{
    const char *p = s->reqs[i].head;
    size_t nlen = strlen(name);

    out[0] = '\0';
    while ((p = strchr(p, '\n'))) {
        p++;
        if (strncasecmp(p, name, nlen) == 0 && p[nlen] == ':') {
            const char *v = p + nlen + 1;
            size_t n;

            while (*v == ' ')
                v++;
            n = strcspn(v, "\r\n");
            if (n >= outlen)
                n = outlen - 1;
            memcpy(out, v, n);
            out[n] = '\0';
            break;
        }
    }
    return out;
}

/* A port on 127.0.0.1 where nothing listens (bound, then closed). */
static inline int fake_closed_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a;
    socklen_t alen = sizeof(a);
    int port = 0;

    memset(&a, 0, sizeof(a));
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0 &&
        getsockname(fd, (struct sockaddr *)&a, &alen) == 0)
        port = ntohs(a.sin_port);
    close(fd);
    return port;
}

#endif
