/*
 * cmd_run.c: `hcpipe run`, one job without the server, through the same engine code the worker
 * uses (engine_local start/poll/fetch_page into the result writer).
 *
 * Organisation: usage text; option parsing (exit 2 on a usage error); the job itself (sources
 * before the last are loaded with engine_local_load(), the last one is the job's source; the
 * result is written to a results folder of the data dir and the chosen file copied to stdout or
 * --output); clean-up of the temporary data dir. SIGINT/SIGTERM set the job's cancel flag, so
 * the temporary warehouse is still removed.
 *
 * Progress: when stderr is a terminal, a thread draws a one-line bar there (bytes read of the
 * total, rate, ETA, records) from the engine's progress atomics, once the job has run for
 * PROGRESS_AFTER_MS (small inputs stay quiet), and erases it at the end. Not a terminal: nothing.
 */
#include <errno.h>
#include <pthread.h>
#include <getopt.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <ftw.h>

#include "server/catalog.h"
#include "server/commands.h"
#include "server/engine.h"
#include "server/engine_local.h"
#include "server/error.h"
#include "server/records.h"
#include "server/result.h"
#include "server/sys.h"

static const char usage[] =
    "Usage: hcpipe run --query NAME --source SRC [--source SRC ...] [options]\n"
    "\n"
    "Runs one query on the embedded engine without the server and prints the result.\n"
    "\n"
    "  --query NAME            facility_metrics | accredited_by_state | expiring_accreditations\n"
    "  --source SRC            a file path or s3://bucket/key (read from <data-dir>/buckets);\n"
    "                          repeatable: sources load in the order given, and the last one is\n"
    "                          the job's source (the object of --scope object)\n"
    "  --as-of YYYY-MM-DD      reference date (default: today, UTC)\n"
    "  --scope dataset|object  every facility (default) or only the source's\n"
    "  --on-bad-record fail|skip  fail the job (default) or skip bad records\n"
    "  --format csv|json       output format (default csv)\n"
    "  --output FILE           write the result to FILE instead of stdout\n"
    "  --data-dir DIR          keep the warehouse in DIR (default: a temporary one, removed\n"
    "                          at exit)\n"
    "  -h, --help              show this help\n"
    "\n"
    "Exit status: 0 success, 1 the job failed (problem+json on stderr), 2 usage error.\n";

static atomic_int run_cancel;

#define PROGRESS_AFTER_MS 500 /* a job shorter than this draws no bar */
#define PROGRESS_TICK_MS  200 /* redraw interval */
#define PROGRESS_WIDTH    24  /* cells of the bar */

/* The progress bar's thread (see the file header). */
struct progress_bar {
    const struct engine_progress *p; /* the job's progress (borrowed) */
    atomic_int stop;                 /* set when the job is over */
    int64_t start_ms;                /* sys_mono_ms() at the start */
    int shown;                       /* 1 once a bar was drawn (thread only) */
    pthread_t tid;
    int started;
};

/* Human bytes, e.g. "12.3 MiB". */
static void human_bytes(double v, char *out, size_t n)
{
    static const char *const units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    size_t u = 0;

    while (v >= 1024 && u + 1 < sizeof units / sizeof units[0]) {
        v /= 1024;
        u++;
    }
    snprintf(out, n, u ? "%.1f %s" : "%.0f %s", v, units[u]);
}

static void progress_draw(struct progress_bar *b, int64_t elapsed_ms)
{
    uint64_t read = atomic_load(&b->p->bytes_read), total = atomic_load(&b->p->bytes_total);
    uint64_t records = atomic_load(&b->p->records_read);
    double rate = elapsed_ms > 0 ? (double)read * 1000.0 / (double)elapsed_ms : 0;
    char bar[PROGRESS_WIDTH + 1], done[32], all[32], speed[32], eta[32] = "";
    int filled = 0;

    if (total > 0) {
        filled = (int)((double)(read > total ? total : read) * PROGRESS_WIDTH / (double)total);
        if (rate > 0)
            snprintf(eta, sizeof eta, "  ETA %llds",
                     (long long)((double)(total > read ? total - read : 0) / rate + 0.5));
    }
    for (int i = 0; i < PROGRESS_WIDTH; i++)
        bar[i] = i < filled ? '#' : '.';
    bar[PROGRESS_WIDTH] = '\0';
    human_bytes((double)read, done, sizeof done);
    human_bytes((double)total, all, sizeof all);
    human_bytes(rate, speed, sizeof speed);
    if (total > 0)
        fprintf(stderr, "\r[%s] %3d%%  %s / %s  %s/s%s  %llu records\033[K", bar,
                (int)((double)(read > total ? total : read) * 100.0 / (double)total), done, all,
                speed, eta, (unsigned long long)records);
    else
        fprintf(stderr, "\r%s  %s/s  %llu records\033[K", done, speed, (unsigned long long)records);
    fflush(stderr);
    b->shown = 1;
}

static void *progress_main(void *arg)
{
    struct progress_bar *b = arg;
    struct timespec tick = {0, PROGRESS_TICK_MS * 1000000L};
    const char *after_env = getenv("HCPIPE_PROGRESS_AFTER_MS"); /* a seam for tests */
    int64_t after = after_env ? strtoll(after_env, NULL, 10) : PROGRESS_AFTER_MS;

    while (!atomic_load(&b->stop)) {
        int64_t elapsed = sys_mono_ms() - b->start_ms;

        if (elapsed >= after)
            progress_draw(b, elapsed);
        nanosleep(&tick, NULL);
    }
    if (b->shown) {
        progress_draw(b, sys_mono_ms() - b->start_ms); /* the final state, then erase it */
        fputs("\r\033[K", stderr);                     /* erase the bar */
        fflush(stderr);
    }
    return NULL;
}

/* Starts the bar when stderr is a terminal. */
static void progress_start(struct progress_bar *b, const struct engine_progress *p)
{
    memset(b, 0, sizeof *b);
    b->p = p;
    b->start_ms = sys_mono_ms();
    if (isatty(STDERR_FILENO) && pthread_create(&b->tid, NULL, progress_main, b) == 0)
        b->started = 1;
}

static void progress_stop(struct progress_bar *b)
{
    atomic_store(&b->stop, 1);
    if (b->started)
        pthread_join(b->tid, NULL);
    b->started = 0;
}

static void on_signal(int sig)
{
    (void)sig;
    atomic_store(&run_cancel, 1);
}

static int usage_error(const char *fmt, const char *arg)
{
    fputs("hcpipe run: ", stderr);
    fprintf(stderr, fmt, arg ? arg : "");
    fputs("\nTry 'hcpipe run --help'.\n", stderr);
    return 2;
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    remove(path);
    return 0;
}

static void print_problem(int err, json_t *problem)
{
    json_t *doc = problem ? json_incref(problem) : hc_problem_new(err, NULL);
    char *text = doc ? json_dumps(doc, JSON_INDENT(2)) : NULL;

    fprintf(stderr, "%s\n", text ? text : "{\"title\": \"Internal error\"}");
    free(text);
    json_decref(doc);
}

static int copy_file(const char *from, const char *to)
{
    FILE *in = fopen(from, "rb"), *out = NULL;
    char buf[1 << 16];
    size_t n;
    int rc = 0;

    if (!in)
        return -1;
    out = to ? fopen(to, "wb") : stdout;
    if (!out) {
        fclose(in);
        return -1;
    }
    while ((n = fread(buf, 1, sizeof buf, in)) > 0)
        if (fwrite(buf, 1, n, out) != n)
            rc = -1;
    if (ferror(in))
        rc = -1;
    fclose(in);
    if (to) {
        if (fclose(out) != 0)
            rc = -1;
    } else if (fflush(stdout) != 0) {
        rc = -1;
    }
    return rc;
}

/* Appends src's array member `name` to dst's (both objects; creates dst's when missing). */
static void merge_array(json_t *dst, json_t *src, const char *name)
{
    json_t *from = json_object_get(src, name), *to = json_object_get(dst, name);

    if (!json_is_array(from))
        return;
    if (!json_is_array(to)) {
        to = json_array();
        json_object_set_new(dst, name, to);
    }
    json_array_extend(to, from);
}

struct run_opts {
    const char *query, *as_of, *format, *output, *data_dir;
    const char **sources;
    int n_sources;
    enum job_scope scope;
    enum bad_record_policy policy;
};

static int run_job(const struct run_opts *o, const char *data_dir)
{
    struct engine *e = NULL;
    struct result_writer *rw = NULL;
    struct result_sink sink;
    struct engine_progress progress;
    struct progress_bar bar;
    struct engine_job job;
    json_t *problem = NULL, *stats = NULL, *earlier = NULL, *warnings = NULL, *bad = NULL;
    char job_id[37], *handle = NULL, *token = NULL, results[4096], file[4200];
    int err, done = 0;

    memset(&progress, 0, sizeof progress);
    progress_start(&bar, &progress);
    sys_uuid(job_id);
    err = engine_local_new(data_dir, &e);
    if (err)
        goto out;
    engine_local_allow_files(e, 1);
    job = (struct engine_job){.job_id = job_id,
                              .query = o->query,
                              .as_of = o->as_of,
                              .scope = o->scope,
                              .on_bad_record = o->policy,
                              .attempt = 1,
                              .deadline_ms = 0,
                              .cancel = &run_cancel,
                              .progress = &progress};
    earlier = json_object();
    if (!earlier) {
        err = HC_ENOMEM;
        goto out;
    }
    for (int i = 0; i + 1 < o->n_sources; i++) {
        json_t *st = NULL;

        job.source = o->sources[i];
        err = engine_local_load(e, &job, &st, &problem);
        if (err)
            goto out;
        merge_array(earlier, st, "bad_records");
        json_decref(st);
    }
    job.source = o->n_sources ? o->sources[o->n_sources - 1] : NULL;
    err = e->ops->start(e, &job, NULL, &handle, &problem);
    while (!err && !done)
        err = e->ops->poll(e, &job, handle, &done, &stats, &problem);
    if (err)
        goto out;
    snprintf(results, sizeof results, "%s/results/%s", data_dir, job_id);
    err = result_writer_open(results,
                             &(struct result_meta){job_id, o->query, o->as_of, e->ops->name}, &rw);
    if (err)
        goto out;
    sink = result_writer_sink(rw);
    do {
        char *next = NULL;

        err = e->ops->fetch_page(e, &job, handle, token, &sink, &next, &problem);
        free(token);
        token = next;
    } while (!err && token);
    if (err)
        goto out;
    /* Like the worker: warnings and bad_records move from the statistics into their own
     * members; bad records of earlier sources come first. */
    warnings = json_incref(json_object_get(stats, "warnings"));
    if (json_object_get(stats, "bad_records") || json_object_get(earlier, "bad_records")) {
        merge_array(earlier, stats, "bad_records");
        bad = json_incref(json_object_get(earlier, "bad_records"));
    }
    json_object_del(stats, "warnings");
    json_object_del(stats, "bad_records");
    err = result_writer_commit(rw, stats, warnings, bad);
    rw = NULL;
    if (err)
        goto out;
    progress_stop(&bar); /* the bar is gone before the result reaches the terminal */
    snprintf(file, sizeof file, "%s/result.%s", results, o->format);
    if (copy_file(file, o->output) != 0) {
        err = HC_EIO;
        problem = hc_problem_new(err, o->output ? o->output : "stdout");
    }
    rm_entry(file, NULL, 0, NULL);
    snprintf(file, sizeof file, "%s/result.%s", results,
             strcmp(o->format, "csv") == 0 ? "json" : "csv");
    rm_entry(file, NULL, 0, NULL);
    rmdir(results);
out:
    progress_stop(&bar); /* before anything else is printed */
    if (err)
        print_problem(err, problem);
    if (e && handle && err)
        e->ops->cancel(e, handle);
    result_writer_abort(rw);
    free(token);
    free(handle);
    json_decref(problem);
    json_decref(stats);
    json_decref(earlier);
    json_decref(warnings);
    json_decref(bad);
    if (e)
        e->ops->destroy(e);
    return err ? 1 : 0;
}

int run_main(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"query", required_argument, NULL, 'q'},
        {"source", required_argument, NULL, 's'},
        {"as-of", required_argument, NULL, 'a'},
        {"scope", required_argument, NULL, 'S'},
        {"on-bad-record", required_argument, NULL, 'b'},
        {"format", required_argument, NULL, 'f'},
        {"output", required_argument, NULL, 'o'},
        {"data-dir", required_argument, NULL, 'd'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    struct run_opts o = {.format = "csv", .scope = SCOPE_DATASET, .policy = BAD_RECORD_FAIL};
    char today[11], tmpl[4096], *tmp_dir = NULL;
    int c, rc;
    int32_t days;

    o.sources = calloc((size_t)argc + 1, sizeof *o.sources);
    if (!o.sources)
        return 1;
    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":h", longopts, NULL)) != -1) {
        switch (c) {
        case 'q':
            o.query = optarg;
            break;
        case 's':
            o.sources[o.n_sources++] = optarg;
            break;
        case 'a':
            o.as_of = optarg;
            break;
        case 'S':
            if (strcmp(optarg, "dataset") == 0)
                o.scope = SCOPE_DATASET;
            else if (strcmp(optarg, "object") == 0)
                o.scope = SCOPE_OBJECT;
            else
                return free(o.sources),
                       usage_error("--scope must be dataset or object, not '%s'", optarg);
            break;
        case 'b':
            if (strcmp(optarg, "fail") == 0)
                o.policy = BAD_RECORD_FAIL;
            else if (strcmp(optarg, "skip") == 0)
                o.policy = BAD_RECORD_SKIP;
            else
                return free(o.sources),
                       usage_error("--on-bad-record must be fail or skip, not '%s'", optarg);
            break;
        case 'f':
            if (strcmp(optarg, "csv") != 0 && strcmp(optarg, "json") != 0)
                return free(o.sources),
                       usage_error("--format must be csv or json, not '%s'", optarg);
            o.format = optarg;
            break;
        case 'o':
            o.output = optarg;
            break;
        case 'd':
            o.data_dir = optarg;
            break;
        case 'h':
            fputs(usage, stdout);
            free(o.sources);
            return 0;
        case ':':
            free(o.sources);
            return usage_error("option '%s' needs a value", argv[optind - 1]);
        default:
            free(o.sources);
            return usage_error("unknown option '%s'", argv[optind - 1]);
        }
    }
    rc = 0;
    if (optind < argc)
        rc = usage_error("unexpected argument '%s'", argv[optind]);
    else if (!o.query)
        rc = usage_error("--query is required%s", NULL);
    else if (!engine_query_known(o.query))
        rc = usage_error("unknown query '%s'", o.query);
    else if (o.n_sources == 0)
        rc = usage_error("at least one --source is required%s", NULL);
    else if (o.as_of && (strlen(o.as_of) != 10 || records_parse_date(o.as_of, 10, &days) != 0))
        rc = usage_error("--as-of must be a calendar date YYYY-MM-DD, not '%s'", o.as_of);
    if (rc) {
        free(o.sources);
        return rc;
    }
    if (!o.as_of) {
        sys_date_utc(sys_now_ms(), today);
        o.as_of = today;
    }
    if (!o.data_dir) {
        const char *t = getenv("TMPDIR");
        snprintf(tmpl, sizeof tmpl, "%s/hcpipe-run-XXXXXX", t && *t ? t : "/tmp");
        tmp_dir = mkdtemp(tmpl);
        if (!tmp_dir) {
            print_problem(HC_EIO, NULL);
            free(o.sources);
            return 1;
        }
    }
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
    rc = run_job(&o, o.data_dir ? o.data_dir : tmp_dir);
    if (tmp_dir)
        nftw(tmp_dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    free(o.sources);
    return rc;
}
