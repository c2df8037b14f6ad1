/*
 * hcpipe dashboard: a single-page app with hash routing, plain JavaScript, no build step.
 *
 *   #/jobs[?state=S]   the live job list (polled with If-None-Match: an idle page costs 304s)
 *   #/jobs/<id>        one job: facts, timeline, error, progress, result files, the result drawn
 *                      (map + bar chart, expiring table, paged sortable table)
 *   #/submit           the form that submits a job (POST /jobs)
 *   #/dead             dead and failed jobs with a replay button (POST /jobs/<id>/retry)
 *
 * Organisation: small helpers (DOM building without innerHTML, formatting), the API client
 * (bearer token from sessionStorage, ETag cache), reusable views (sortable paged table, US map,
 * bar chart, problem box), the pages, and the router. Every page render returns a cleanup
 * function that stops its polling.
 */
(function () {
  "use strict";

  var POLL_LIST_MS = 2000;
  var POLL_JOB_MS = 1000;
  var FINAL = { succeeded: 1, failed: 1, dead: 1, cancelled: 1 };
  var STATES = ["queued", "running", "retrying", "succeeded", "failed", "dead", "cancelled"];
  var QUERIES = [
    ["accredited_by_state", "Accredited facilities by state"],
    ["expiring_accreditations", "Expiring accreditations"],
    ["facility_metrics", "Facility metrics"]
  ];
  var FIPS = {
    "01": "AL", "02": "AK", "04": "AZ", "05": "AR", "06": "CA", "08": "CO", "09": "CT",
    "10": "DE", "11": "DC", "12": "FL", "13": "GA", "15": "HI", "16": "ID", "17": "IL",
    "18": "IN", "19": "IA", "20": "KS", "21": "KY", "22": "LA", "23": "ME", "24": "MD",
    "25": "MA", "26": "MI", "27": "MN", "28": "MS", "29": "MO", "30": "MT", "31": "NE",
    "32": "NV", "33": "NH", "34": "NJ", "35": "NM", "36": "NY", "37": "NC", "38": "ND",
    "39": "OH", "40": "OK", "41": "OR", "42": "PA", "44": "RI", "45": "SC", "46": "SD",
    "47": "TN", "48": "TX", "49": "UT", "50": "VT", "51": "VA", "53": "WA", "54": "WV",
    "55": "WI", "56": "WY", "60": "AS", "66": "GU", "69": "MP", "72": "PR", "78": "VI"
  };
  var PALETTE = ["#deebf7", "#9ecae1", "#6baed6", "#3182bd", "#08519c"];
  var EMPTY_FILL = "#eef1f4";

  /* ---- helpers -------------------------------------------------------------------------- */

  var SVGNS = "http://www.w3.org/2000/svg";

  /* h("tag.class#id", {attr: v, onclick: f}, child, ...): an element; strings become text. */
  function build(ns, spec, attrs, kids) {
    var m = /^([a-z0-9]+)((?:[.#][\w-]+)*)$/i.exec(spec);
    var el = ns ? document.createElementNS(ns, m[1]) : document.createElement(m[1]);
    (m[2].match(/[.#][\w-]+/g) || []).forEach(function (p) {
      if (p[0] === ".") el.classList.add(p.slice(1));
      else el.id = p.slice(1);
    });
    Object.keys(attrs || {}).forEach(function (k) {
      var v = attrs[k];
      if (v === null || v === undefined || v === false) return;
      if (k.slice(0, 2) === "on") el.addEventListener(k.slice(2), v);
      else if (k === "text") el.textContent = v;
      else el.setAttribute(k, v === true ? "" : String(v));
    });
    append(el, kids);
    return el;
  }
  function append(el, kids) {
    kids.forEach(function (c) {
      if (c === null || c === undefined || c === false) return;
      if (Array.isArray(c)) append(el, c);
      else el.appendChild(typeof c === "object" ? c : document.createTextNode(String(c)));
    });
  }
  function h(spec, attrs) { return build(null, spec, attrs, [].slice.call(arguments, 2)); }
  function s(spec, attrs) { return build(SVGNS, spec, attrs, [].slice.call(arguments, 2)); }

  function fmtInt(n) { return n === null || n === undefined ? "—" : Number(n).toLocaleString("en-US"); }
  function fmtBytes(n) {
    if (n === null || n === undefined) return "—";
    var u = ["B", "KiB", "MiB", "GiB", "TiB"], i = 0;
    while (n >= 1024 && i < u.length - 1) { n /= 1024; i++; }
    return (i ? n.toFixed(1) : String(n)) + " " + u[i];
  }
  function fmtDuration(ms) {
    if (ms === null || ms === undefined || ms < 0) return "—";
    if (ms < 1000) return ms + " ms";
    var sec = ms / 1000;
    if (sec < 60) return sec.toFixed(1) + " s";
    var m = Math.floor(sec / 60), r = Math.round(sec % 60);
    if (m < 60) return m + " min " + r + " s";
    return Math.floor(m / 60) + " h " + (m % 60) + " min";
  }
  function fmtAge(iso) {
    if (!iso) return "—";
    var sec = Math.max(0, Math.round((Date.now() - Date.parse(iso)) / 1000));
    if (sec < 60) return sec + " s ago";
    if (sec < 3600) return Math.floor(sec / 60) + " min ago";
    if (sec < 86400) return Math.floor(sec / 3600) + " h ago";
    return Math.floor(sec / 86400) + " d ago";
  }
  function ms(iso) { return iso ? Date.parse(iso) : null; }
  function jobDuration(job) {
    var a = ms(job.started_at), b = ms(job.finished_at) || (job.state === "running" ? Date.now() : null);
    return a && b ? b - a : null;
  }
  function jobBytes(job) {
    var st = job.stats || {}, pr = job.progress || {};
    if (st.bytes_scanned !== undefined) return st.bytes_scanned;
    if (st.bytes_read !== undefined) return st.bytes_read;
    if (pr.bytes_read !== undefined) return pr.bytes_read;
    return null;
  }
  function stateBadge(state) { return h("span.state.state-" + state, { "data-state": state }, state); }
  function shortId(id) { return id.slice(0, 8); }
  function announce(text) {
    var live = document.getElementById("live");
    live.textContent = "";
    setTimeout(function () { live.textContent = text; }, 50);
  }
  function parseHash() {
    var raw = location.hash.replace(/^#/, "") || "/jobs";
    var q = raw.indexOf("?"), path = q < 0 ? raw : raw.slice(0, q), params = {};
    if (q >= 0) raw.slice(q + 1).split("&").forEach(function (kv) {
      var p = kv.split("=");
      if (p[0]) params[decodeURIComponent(p[0])] = decodeURIComponent(p[1] || "");
    });
    return { path: path, params: params };
  }

  /* ---- the API -------------------------------------------------------------------------- */

  var TOKEN_KEY = "hcpipe.token";
  var etags = {}; /* url -> {etag, data}: the ETag cache behind If-None-Match */

  function request(method, url, body, useCache) {
    var headers = { "Accept": "application/json" };
    var token = sessionStorage.getItem(TOKEN_KEY);
    if (token) headers["Authorization"] = "Bearer " + token;
    if (body !== undefined) headers["Content-Type"] = "application/json";
    var cached = useCache ? etags[url] : null;
    if (cached) headers["If-None-Match"] = cached.etag;
    return fetch(url, {
      method: method, headers: headers, cache: "no-store",
      body: body === undefined ? undefined : JSON.stringify(body)
    }).then(function (resp) {
      if (resp.status === 304 && cached)
        return { ok: true, status: 304, changed: false, data: cached.data };
      return resp.text().then(function (text) {
        var data = null;
        try { data = text ? JSON.parse(text) : null; } catch (e) { data = { title: "Unreadable answer", detail: text.slice(0, 300) }; }
        var etag = resp.headers.get("ETag");
        if (resp.ok && useCache && etag) etags[url] = { etag: etag, data: data };
        return { ok: resp.ok, status: resp.status, changed: true, data: data };
      });
    }, function (err) {
      return { ok: false, status: 0, changed: true, data: { title: "The service cannot be reached", detail: String(err) } };
    });
  }

  /* ---- views ---------------------------------------------------------------------------- */

  /* A problem+json document as readable text. */
  function problemBox(p, heading) {
    p = p || {};
    var slug = typeof p.type === "string" ? p.type.replace(/^.*\/problems\//, "") : null;
    var items = [];
    (p.invalid_params || []).forEach(function (ip) {
      var t = ip.name + ": " + ip.reason;
      if (t !== p.detail) items.push(t); /* the detail often says it already */
    });
    (p.bad_records || []).slice(0, 20).forEach(function (br) {
      items.push("record " + br.position + (br.source ? " of " + br.source : "") + ": " + br.reason);
    });
    return h("div.error", { role: "alert" },
      h("h3", { text: (heading ? heading + ": " : "") + (p.title || "Error") }),
      p.detail ? h("p", { text: p.detail }) : null,
      items.length ? h("ul", {}, items.map(function (t) { return h("li", { text: t }); })) : null,
      h("p.hint", {}, [slug ? "Problem type: " + slug : null, p.status ? " · HTTP " + p.status : null,
        p.attempt ? " · attempt " + p.attempt : null].filter(Boolean).join("")));
  }

  /*
   * A sortable, paged table. cols: [{key, label, num, render(row)}]. opts: {id, pageSize,
   * sortKey, sortDir, rowClass(row), caption}. Sorting is stable and nulls go last.
   */
  function dataTable(cols, rows, opts) {
    var state = { key: opts.sortKey || null, dir: opts.sortDir || "ascending", page: 0 };
    var size = opts.pageSize || rows.length || 1;
    var wrap = h("div", { id: opts.id, "data-rows": rows.length });
    function sorted() {
      if (!state.key) return rows;
      var k = state.key, sign = state.dir === "ascending" ? 1 : -1;
      return rows.map(function (r, i) { return [r, i]; }).sort(function (a, b) {
        var x = a[0][k], y = b[0][k];
        if (x === y) return a[1] - b[1];
        if (x === null || x === undefined) return 1;
        if (y === null || y === undefined) return -1;
        return (x < y ? -1 : 1) * sign;
      }).map(function (p) { return p[0]; });
    }
    function render(focusKey) {
      var all = sorted(), pages = Math.max(1, Math.ceil(all.length / size));
      if (state.page >= pages) state.page = pages - 1;
      var slice = all.slice(state.page * size, (state.page + 1) * size);
      var head = h("tr", {}, cols.map(function (c) {
        var sortState = state.key === c.key ? state.dir : "none";
        return h("th" + (c.num ? ".num" : ""), { scope: "col", "aria-sort": opts.noSort ? null : sortState },
          opts.noSort ? c.label : h("button.sort", {
            type: "button", "data-key": c.key,
            onclick: function () {
              if (state.key === c.key) state.dir = state.dir === "ascending" ? "descending" : "ascending";
              else { state.key = c.key; state.dir = "ascending"; }
              state.page = 0;
              render(c.key);
              announce("Sorted by " + c.label + ", " + state.dir);
            }
          }, c.label));
      }));
      var body = h("tbody", {}, slice.map(function (r) {
        return h("tr" + (opts.rowClass && opts.rowClass(r) ? "." + opts.rowClass(r) : ""), {},
          cols.map(function (c) {
            var v = c.render ? c.render(r) : r[c.key];
            return h("td" + (c.num ? ".num" : ""), { "data-key": c.key, "data-label": c.label },
              v === null || v === undefined ? "—" : (c.num && typeof v === "number" ? fmtInt(v) : v));
          }));
      }));
      var table = h("table", {}, opts.caption ? h("caption.visually-hidden", { text: opts.caption }) : null,
        h("thead", {}, head), body);
      var pager = pages > 1 ? h("div.pager", {},
        h("button.secondary", { type: "button", "data-page": "prev", disabled: state.page === 0,
          onclick: function () { state.page--; render(); announce("Page " + (state.page + 1) + " of " + pages); } }, "Previous"),
        h("span", { "data-page-label": "", "aria-live": "off" }, "Page " + (state.page + 1) + " of " + pages +
          " · " + fmtInt(all.length) + " rows"),
        h("button.secondary", { type: "button", "data-page": "next", disabled: state.page >= pages - 1,
          onclick: function () { state.page++; render(); announce("Page " + (state.page + 1) + " of " + pages); } }, "Next"))
        : null;
      wrap.textContent = "";
      append(wrap, [h("div.table-wrap", {}, table), pager]);
      if (focusKey) {
        var b = wrap.querySelector('button.sort[data-key="' + focusKey + '"]');
        if (b) b.focus();
      }
    }
    render();
    return wrap;
  }

  var atlas = null; /* the US states topology, fetched once */
  function loadAtlas() {
    if (!atlas)
      atlas = fetch("/ui/vendor/states-albers-10m.json").then(function (r) { return r.json(); });
    return atlas;
  }

  /* SVG path data of a planar (already projected) GeoJSON geometry. */
  function pathData(geom) {
    var polys = geom.type === "Polygon" ? [geom.coordinates] : geom.type === "MultiPolygon" ? geom.coordinates : [];
    return polys.map(function (poly) {
      return poly.map(function (ring) {
        return "M" + ring.map(function (pt) { return pt[0].toFixed(1) + "," + pt[1].toFixed(1); }).join("L") + "Z";
      }).join("");
    }).join("");
  }

  /* Colour class limits for counts 1..max in PALETTE.length steps. */
  function classes(max) {
    var n = PALETTE.length, lims = [];
    for (var i = 1; i <= n; i++) lims.push(Math.max(i, Math.ceil(max * i / n)));
    return lims;
  }
  function fillFor(count, lims) {
    if (!count) return EMPTY_FILL;
    for (var i = 0; i < lims.length; i++) if (count <= lims[i]) return PALETTE[i];
    return PALETTE[PALETTE.length - 1];
  }

  /* The US map shaded by facility count per state (byState: {TX: n}). */
  function usMap(byState, names) {
    var holder = h("figure.map", { id: "state-map" }, h("p", { text: "Loading the map…" }));
    var max = 0;
    Object.keys(byState).forEach(function (k) { max = Math.max(max, byState[k]); });
    var lims = classes(max);
    loadAtlas().then(function (us) {
      var features = topojson.feature(us, us.objects.states).features;
      var svg = s("svg", { viewBox: "0 0 975 610", role: "img", "aria-labelledby": "map-title map-desc" },
        s("title#map-title", { text: "Accredited facilities by state" }),
        s("desc#map-desc", { text: "A map of the United States; darker states have more accredited facilities. The bar chart and table below give the same numbers." }),
        features.map(function (f) {
          var abbr = FIPS[f.id] || f.id, n = byState[abbr] || 0;
          return s("path.state-shape", { d: pathData(f.geometry), fill: fillFor(n, lims), "data-state": abbr, "data-count": n },
            s("title", { text: f.properties.name + " (" + abbr + "): " + fmtInt(n) + " facilities" }));
        }));
      var prev = 0;
      var legend = h("div.legend", { "aria-hidden": "true" },
        h("span", {}, h("span.swatch", { style: "background:" + EMPTY_FILL }), "none"),
        lims.filter(function (l, i) { return i === 0 || l !== lims[i - 1]; }).map(function (l) {
          var label = prev + 1 === l ? String(l) : (prev + 1) + "–" + l;
          prev = l;
          return h("span", {}, h("span.swatch", { style: "background:" + fillFor(l, lims) }), label);
        }));
      holder.textContent = "";
      append(holder, [svg, legend, h("figcaption.hint", { text: "Facilities with a valid accreditation, by state." })]);
    }, function () {
      holder.textContent = "The map could not be loaded.";
    });
    return holder;
  }

  /* A horizontal bar chart of rows [{label, value}] sorted by value, largest first. */
  function barChart(items, title) {
    var max = items.reduce(function (m, it) { return Math.max(m, it.value); }, 0) || 1;
    var barH = 18, gap = 5, left = 48, width = 420, right = 70;
    var height = items.length * (barH + gap) + gap;
    return h("figure.chart", { id: "state-bars" },
      s("svg", { viewBox: "0 0 " + (left + width + right) + " " + height, role: "img", "aria-label": title + ", largest first" },
        items.map(function (it, i) {
          var y = gap + i * (barH + gap), w = Math.max(1, Math.round(width * it.value / max));
          return s("g", {},
            s("text", { x: left - 6, y: y + barH - 5, "text-anchor": "end", text: it.label }),
            s("rect", { x: left, y: y, width: w, height: barH, fill: "#3182bd", "data-state": it.label, "data-value": it.value },
              s("title", { text: it.label + ": " + fmtInt(it.value) })),
            s("text", { x: left + w + 5, y: y + barH - 5, text: fmtInt(it.value) }));
        })),
      h("figcaption.hint", { text: title + ", sorted." }));
  }

  /* ---- result pages --------------------------------------------------------------------- */

  function columnsOf(result) {
    return (result.columns || []).map(function (c) {
      var num = c.type === "bigint" || c.type === "double";
      return { key: c.name, label: c.name.replace(/_/g, " "), num: num };
    });
  }

  function renderAccredited(result) {
    var byState = {}, items = [];
    result.rows.forEach(function (r) {
      var k = r.state === null ? "(none)" : r.state;
      byState[k] = (byState[k] || 0) + r.facility_count;
    });
    Object.keys(byState).forEach(function (k) { items.push({ label: k, value: byState[k] }); });
    items.sort(function (a, b) { return b.value - a.value || (a.label < b.label ? -1 : 1); });
    return [
      h("div.grid2", {}, usMap(byState), barChart(items, "Accredited facilities by state")),
      h("h3", { text: "As a table" }),
      dataTable(columnsOf(result), result.rows, { id: "result-table", pageSize: 60, sortKey: "facility_count", sortDir: "descending", caption: "Accredited facilities by state" })
    ];
  }

  function renderExpiring(result) {
    var soon = result.rows.filter(function (r) { return r.days_left !== null && r.days_left < 30; }).length;
    var cols = columnsOf(result).map(function (c) {
      if (c.key !== "days_left") return c;
      c.render = function (r) {
        return r.days_left < 30 ? h("span.tag-soon", {}, fmtInt(r.days_left), h("span", { text: " (under 30 days)" })) : fmtInt(r.days_left);
      };
      return c;
    });
    return [
      h("p.notice", { id: "expiring-summary", text: fmtInt(result.rows.length) + " accreditations expire; " + fmtInt(soon) + " in under 30 days (highlighted)." }),
      dataTable(cols, result.rows, {
        id: "result-table", pageSize: 50, sortKey: "days_left", sortDir: "ascending",
        rowClass: function (r) { return r.days_left !== null && r.days_left < 30 ? "soon" : ""; },
        caption: "Expiring accreditations, soonest first"
      })
    ];
  }

  function renderGeneric(result) {
    return [dataTable(columnsOf(result), result.rows, { id: "result-table", pageSize: 25, caption: result.query + " result" })];
  }

  function renderResult(job, holder) {
    request("GET", job.links.result_json, undefined, true).then(function (r) {
      holder.textContent = "";
      if (!r.ok) { holder.appendChild(problemBox(r.data, "The result could not be read")); return; }
      var res = r.data;
      var draw = res.query === "accredited_by_state" ? renderAccredited
        : res.query === "expiring_accreditations" ? renderExpiring : renderGeneric;
      append(holder, [
        h("p", { id: "result-summary" }, fmtInt(res.row_count) + " rows, as of " + res.as_of + "."),
        draw(res),
        (res.warnings || []).length ? h("div.notice", {}, "Warnings: " + res.warnings.join("; ")) : null
      ]);
    });
  }

  /* ---- pages ---------------------------------------------------------------------------- */

  function pageTitle(text) { return h("h1", { tabindex: "-1", text: text }); }

  function jobsPage(main, params) {
    var filter = params.state || "";
    var select = h("select#state-filter", {
      onchange: function () { location.hash = "#/jobs" + (select.value ? "?state=" + select.value : ""); }
    }, h("option", { value: "", text: "All states" }), STATES.map(function (st) {
      return h("option", { value: st, selected: st === filter, text: st });
    }));
    var status = h("p.hint#jobs-status", { "aria-live": "off" });
    var list = h("div#jobs-list", {}, h("p", { text: "Loading jobs…" }));
    append(main, [pageTitle(filter ? "Jobs: " + filter : "Jobs"),
      h("div.toolbar", {}, h("div.field", {}, h("label", { for: "state-filter", text: "Show" }), select),
        h("a.button", { href: "#/submit" }, "Submit a job")),
      status, list]);
    var url = "/jobs?limit=100" + (filter ? "&state=" + encodeURIComponent(filter) : "");
    var seen = {}, timer = null, stopped = false, polls = 0, unchanged = 0;
    function draw(data) {
      var jobs = data.jobs || [];
      list.textContent = "";
      if (!jobs.length) { list.appendChild(h("p", { text: "No jobs" + (filter ? " in state " + filter : "") + "." })); return; }
      list.appendChild(dataTable([
        { key: "state", label: "State", render: function (j) { return stateBadge(j.state); } },
        { key: "id", label: "Job", render: function (j) { return h("a", { href: "#/jobs/" + j.id, "aria-label": "Job " + j.id }, shortId(j.id)); } },
        { key: "query", label: "Query" },
        { key: "source", label: "Source", render: function (j) { return j.source || "whole dataset"; } },
        { key: "created_at", label: "Age", render: function (j) { return h("time", { datetime: j.created_at, title: j.created_at }, fmtAge(j.created_at)); } },
        { key: "duration", label: "Duration", num: true, render: function (j) { return fmtDuration(jobDuration(j)); } },
        { key: "bytes", label: "Bytes scanned", num: true, render: function (j) { return fmtBytes(jobBytes(j)); } }
      ], jobs, { id: "jobs-table", noSort: true, caption: "Jobs, newest first" }));
      if (data.next_cursor) list.appendChild(h("p.hint", { text: "Showing the newest 100 jobs." }));
    }
    function tick() {
      if (stopped) return;
      if (document.hidden) { timer = setTimeout(tick, POLL_LIST_MS); return; }
      request("GET", url, undefined, true).then(function (r) {
        if (stopped) return;
        polls++;
        if (!r.ok) { list.textContent = ""; list.appendChild(problemBox(r.data, "The jobs could not be listed")); }
        else if (r.changed || polls === 1) {
          var changes = [];
          (r.data.jobs || []).forEach(function (j) {
            if (seen[j.id] && seen[j.id] !== j.state) changes.push("Job " + shortId(j.id) + " is now " + j.state);
            seen[j.id] = j.state;
          });
          if (changes.length) announce(changes.join(". "));
          draw(r.data);
        } else {
          unchanged++;
          /* 304: nothing changed; re-render only the ages now and then */
          if (unchanged % 10 === 0) draw(r.data);
        }
        status.textContent = "Updated " + new Date().toLocaleTimeString() + (r.changed ? "" : " (no change)");
        status.setAttribute("data-polls", polls);
        status.setAttribute("data-unchanged", unchanged);
        timer = setTimeout(tick, POLL_LIST_MS);
      });
    }
    tick();
    return function () { stopped = true; clearTimeout(timer); };
  }

  function timeline(job) {
    var items = [h("li", {}, "Created", h("time", { datetime: job.created_at }, job.created_at))];
    if (job.attempts > 0)
      items.push(h("li", {}, "Attempt " + job.attempts + " started", job.started_at ? h("time", { datetime: job.started_at }, job.started_at) : null));
    if (job.attempts > 1)
      items.splice(1, 0, h("li", {}, (job.attempts - 1) + " earlier attempt" + (job.attempts > 2 ? "s" : "") + " failed and " + (job.attempts > 2 ? "were" : "was") + " retried"));
    if (job.state === "retrying" && job.next_run_at)
      items.push(h("li.bad", {}, "Attempt failed; next attempt at", h("time", { datetime: job.next_run_at }, job.next_run_at)));
    if (job.state === "queued" && job.attempts === 0)
      items.push(h("li", {}, "Waiting for a worker"));
    if (job.state === "running")
      items.push(h("li", {}, "Running"));
    if (FINAL[job.state])
      items.push(h("li" + (job.state === "succeeded" ? "" : ".bad"), {}, "Finished: " + job.state,
        job.finished_at ? h("time", { datetime: job.finished_at }, job.finished_at) : null));
    return h("ol.timeline#job-timeline", { "aria-label": "Timeline" }, items);
  }

  function progressView(p) {
    if (!p) return h("p", { text: "Running…" });
    var known = p.bytes_total > 0;
    return h("div#job-progress", {},
      known ? h("progress", { max: p.bytes_total, value: p.bytes_read, "aria-label": "Bytes read" }) : h("progress", { "aria-label": "Working" }),
      h("p", {}, fmtBytes(p.bytes_read) + (known ? " of " + fmtBytes(p.bytes_total) : "") + " read · " +
        fmtInt(p.records_read) + " records · " + fmtBytes(p.rate_bytes_per_s) + "/s" +
        (p.eta_s !== null && p.eta_s !== undefined ? " · about " + fmtDuration(p.eta_s * 1000) + " left" : "")));
  }

  function replayButton(job, after) {
    return h("button.danger", {
      type: "button", "data-action": "replay", "data-job": job.id,
      onclick: function (ev) {
        var b = ev.currentTarget;
        b.disabled = true;
        request("POST", "/jobs/" + job.id + "/retry", {}).then(function (r) {
          if (r.ok) announce("Job " + shortId(job.id) + " was queued again");
          else { b.disabled = false; b.parentNode.appendChild(problemBox(r.data, "Replay failed")); }
          after(r);
        });
      }
    }, "Replay job " + shortId(job.id));
  }

  function jobPage(main, id) {
    var body = h("div#job", {}, h("p", { text: "Loading the job…" }));
    var resultHolder = h("div#result");
    append(main, [pageTitle("Job " + shortId(id)), body, resultHolder]);
    var url = "/jobs/" + encodeURIComponent(id), timer = null, stopped = false, last = null, resultShown = false;
    function draw(job) {
      body.textContent = "";
      var actions = h("div.actions");
      if (job.state === "failed" || job.state === "dead") actions.appendChild(replayButton(job, function () { poll(); }));
      if (job.state === "queued" || job.state === "running" || job.state === "retrying")
        actions.appendChild(h("button.secondary", {
          type: "button", "data-action": "cancel",
          onclick: function () { request("POST", url + "/cancel", {}).then(function () { poll(); }); }
        }, "Cancel"));
      if (job.links && job.links.result_json)
        append(actions, [h("a.button", { href: job.links.result_json, id: "link-json" }, "result.json"),
          h("a.button", { href: job.links.result_csv, id: "link-csv" }, "result.csv")]);
      append(body, [
        h("dl.facts#job-facts", {},
          h("dt", { text: "State" }), h("dd", {}, stateBadge(job.state)),
          h("dt", { text: "Query" }), h("dd", { text: job.query }),
          h("dt", { text: "Source" }), h("dd", { text: job.source || "whole dataset" }),
          h("dt", { text: "As of" }), h("dd", { text: job.as_of }),
          h("dt", { text: "Engine" }), h("dd", { text: job.engine }),
          h("dt", { text: "Attempts" }), h("dd", { text: String(job.attempts) }),
          h("dt", { text: "Duration" }), h("dd", { text: fmtDuration(jobDuration(job)) }),
          h("dt", { text: "Bytes scanned" }), h("dd", { text: fmtBytes(jobBytes(job)) }),
          job.row_count !== undefined && job.row_count !== null ? [h("dt", { text: "Rows" }), h("dd", { text: fmtInt(job.row_count) })] : null,
          h("dt", { text: "Id" }), h("dd", { text: job.id })),
        actions,
        job.state === "running" ? progressView(job.progress) : null,
        job.error ? problemBox(job.error, job.state === "retrying" ? "Last attempt failed" : "The job failed") : null,
        h("h2", { text: "Timeline" }), timeline(job)
      ]);
      if (job.state === "succeeded" && !resultShown) {
        resultShown = true;
        append(resultHolder, [h("h2", { text: "Result" }), h("div#result-body", {}, h("p", { text: "Loading the result…" }))]);
        renderResult(job, resultHolder.querySelector("#result-body"));
      } else if (job.state !== "succeeded" && resultShown) {
        resultShown = false;
        resultHolder.textContent = "";
      }
    }
    function poll() {
      clearTimeout(timer);
      if (stopped) return;
      request("GET", url, undefined, true).then(function (r) {
        if (stopped) return;
        if (!r.ok) { body.textContent = ""; body.appendChild(problemBox(r.data, "The job could not be read")); return; }
        if (r.changed || !last) {
          if (last && last.state !== r.data.state) announce("Job " + shortId(id) + " is now " + r.data.state);
          last = r.data;
          draw(r.data);
        }
        timer = setTimeout(poll, FINAL[r.data.state] ? POLL_LIST_MS : POLL_JOB_MS);
      });
    }
    poll();
    return function () { stopped = true; clearTimeout(timer); };
  }

  function submitPage(main) {
    var err = h("div#submit-error");
    var form = h("form#submit-form", { novalidate: true },
      h("div.field", {}, h("label", { for: "f-query", text: "Query" }),
        h("select#f-query", { name: "query", required: true }, QUERIES.map(function (q) { return h("option", { value: q[0], text: q[1] + " (" + q[0] + ")" }); }))),
      h("div.field", {}, h("label", { for: "f-source", text: "Source (optional)" }),
        h("input#f-source", { name: "source", type: "text", placeholder: "s3://bucket/key", "aria-describedby": "f-source-help", spellcheck: "false" }),
        h("span.hint#f-source-help", { text: "An object to load first. Leave empty to query the whole dataset as it stands." })),
      h("div.field", {}, h("label", { for: "f-scope", text: "Scope" }),
        h("select#f-scope", { name: "scope" }, h("option", { value: "dataset", text: "Whole dataset" }), h("option", { value: "object", text: "Only the source object" }))),
      h("div.field", {}, h("label", { for: "f-asof", text: "As of (optional)" }),
        h("input#f-asof", { name: "as_of", type: "date", "aria-describedby": "f-asof-help" }),
        h("span.hint#f-asof-help", { text: "Accreditations valid on this date count; default today (UTC)." })),
      h("div.field", {}, h("label", { for: "f-bad", text: "Bad records" }),
        h("select#f-bad", { name: "on_bad_record" }, h("option", { value: "fail", text: "Fail the job" }), h("option", { value: "skip", text: "Skip and list them" }))),
      h("div.actions", {}, h("button#f-submit", { type: "submit" }, "Submit job")),
      err);
    form.addEventListener("submit", function (ev) {
      ev.preventDefault();
      var body = { query: form.query.value, scope: form.scope.value, on_bad_record: form.on_bad_record.value };
      if (form.source.value.trim()) body.source = form.source.value.trim();
      if (form.as_of.value) body.as_of = form.as_of.value;
      var btn = form.querySelector("button[type=submit]");
      btn.disabled = true;
      err.textContent = "";
      request("POST", "/jobs", body).then(function (r) {
        btn.disabled = false;
        if (r.ok) { announce("Job submitted"); location.hash = "#/jobs/" + r.data.id; return; }
        var box = problemBox(r.data, "The job was not submitted");
        box.setAttribute("tabindex", "-1");
        err.appendChild(box);
        box.focus();
      });
    });
    append(main, [pageTitle("Submit a job"), h("div.panel", {}, form)]);
    return function () {};
  }

  function deadPage(main) {
    var list = h("div#dead-list", {}, h("p", { text: "Loading…" }));
    append(main, [pageTitle("Dead and failed jobs"),
      h("p.hint", { text: "Dead jobs ran out of attempts; failed jobs hit an error that a retry would not fix by itself. Replaying queues a job again with fresh attempts." }),
      list]);
    var stopped = false, timer = null;
    function load() {
      clearTimeout(timer);
      Promise.all([request("GET", "/jobs?state=dead&limit=100", undefined, true),
        request("GET", "/jobs?state=failed&limit=100", undefined, true)]).then(function (rs) {
        if (stopped) return;
        if (rs[0].changed || rs[1].changed || !list.querySelector("table, p.empty")) {
          var jobs = [];
          rs.forEach(function (r) { if (r.ok) jobs = jobs.concat(r.data.jobs || []); });
          jobs.sort(function (a, b) { return a.created_at < b.created_at ? 1 : -1; });
          list.textContent = "";
          if (!jobs.length) list.appendChild(h("p.empty", { text: "No dead or failed jobs." }));
          else list.appendChild(dataTable([
            { key: "state", label: "State", render: function (j) { return stateBadge(j.state); } },
            { key: "id", label: "Job", render: function (j) { return h("a", { href: "#/jobs/" + j.id, "aria-label": "Job " + j.id }, shortId(j.id)); } },
            { key: "query", label: "Query" },
            { key: "error", label: "Error", render: function (j) { return j.error ? (j.error.title || "") + (j.error.detail ? ": " + j.error.detail : "") : "—"; } },
            { key: "attempts", label: "Attempts", num: true },
            { key: "replay", label: "Action", render: function (j) { return replayButton(j, function () { load(); }); } }
          ], jobs, { id: "dead-table", noSort: true, caption: "Dead and failed jobs" }));
        }
        timer = setTimeout(load, POLL_LIST_MS);
      });
    }
    load();
    return function () { stopped = true; clearTimeout(timer); };
  }

  /* ---- router --------------------------------------------------------------------------- */

  var cleanup = null;
  function route() {
    var r = parseHash(), main = document.getElementById("main"), m;
    if (cleanup) cleanup();
    main.textContent = "";
    var section = "jobs";
    if ((m = /^\/jobs\/([0-9a-fA-F-]{8,64})$/.exec(r.path))) cleanup = jobPage(main, m[1]);
    else if (r.path === "/submit") { section = "submit"; cleanup = submitPage(main); }
    else if (r.path === "/dead") { section = "dead"; cleanup = deadPage(main); }
    else cleanup = jobsPage(main, r.params);
    document.querySelectorAll("[data-nav]").forEach(function (a) {
      if (a.getAttribute("data-nav") === section) a.setAttribute("aria-current", "page");
      else a.removeAttribute("aria-current");
    });
    var h1 = main.querySelector("h1");
    document.title = (h1 ? h1.textContent + " · " : "") + "hcpipe";
    if (h1 && route.started) h1.focus();
    route.started = true;
  }

  function init() {
    var form = document.getElementById("token-form"), input = document.getElementById("token");
    input.value = sessionStorage.getItem(TOKEN_KEY) || "";
    form.addEventListener("submit", function (ev) {
      ev.preventDefault();
      if (input.value) sessionStorage.setItem(TOKEN_KEY, input.value);
      else sessionStorage.removeItem(TOKEN_KEY);
      etags = {};
      announce(input.value ? "Token saved for this tab" : "Token cleared");
      route();
    });
    /* The skip link must not change the hash (the router owns it): it only moves focus. */
    document.querySelector(".skip").addEventListener("click", function (ev) {
      ev.preventDefault();
      document.getElementById("main").focus();
    });
    window.addEventListener("hashchange", route);
    route();
  }
  init();
})();
