/*
 * ui.c: the dashboard, static files compiled into the binary from server/web/ (see
 * server/embedded.h). GET / serves index.html; GET /ui/{file} and GET /ui/vendor/{file} serve
 * server/web/<file> and server/web/vendor/<file>. Only names present in the embedded table are
 * served, so no path can reach anything else. Every answer has an ETag of its bytes (304 on
 * If-None-Match); the page and the app's own files say no-cache (revalidate: they change with the
 * binary), vendored libraries may be cached for a day (their versions are pinned).
 */
#include <stdio.h>
#include <string.h>

#include "routes/routes.h"
#include "server/embedded.h"
#include "server/error.h"

/* Content type by file extension. */
static const char *content_type_of(const char *name)
{
    static const struct {
        const char *ext, *type;
    } types[] = {
        {".html", "text/html; charset=utf-8"},
        {".js", "text/javascript; charset=utf-8"},
        {".mjs", "text/javascript; charset=utf-8"},
        {".css", "text/css; charset=utf-8"},
        {".json", "application/json"},
        {".svg", "image/svg+xml"},
        {".png", "image/png"},
        {".ico", "image/x-icon"},
        {".txt", "text/plain; charset=utf-8"},
        {".md", "text/plain; charset=utf-8"},
    };
    const char *dot = strrchr(name, '.');

    for (size_t i = 0; dot && i < sizeof types / sizeof types[0]; i++)
        if (strcmp(dot, types[i].ext) == 0)
            return types[i].type;
    return "application/octet-stream";
}

static enum MHD_Result serve(struct request *req, const char *folder, const char *file,
                             const char *cache_control)
{
    char name[256];
    const struct embedded_file *f;

    if (snprintf(name, sizeof name, "server/web/%s%s", folder, file) >= (int)sizeof name)
        return reply_problem(req, HC_ENOTFOUND, "no such dashboard file");
    f = embedded_find(name);
    if (!f)
        return reply_problem(req, HC_ENOTFOUND, "no such dashboard file");
    return reply_static_cached(req, f->data, f->size, content_type_of(name), cache_control);
}

enum MHD_Result ui_index(struct request *req)
{
    return serve(req, "", "index.html", "no-cache");
}

enum MHD_Result ui_file(struct request *req)
{
    return serve(req, "", req->params[0], "no-cache");
}

enum MHD_Result ui_vendor_file(struct request *req)
{
    return serve(req, "vendor/", req->params[0], "public, max-age=86400");
}
