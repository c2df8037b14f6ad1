// Prints the benchmark report from the measurements run.sh collected (tests/bench/run.sh).
//
// Input: a tab-separated file, one measurement a line:
//   meta   <key> <value>
//   hcpipe cold|warm <query> <seconds> <maxrss_kb> <rows> <cpu seconds>
//   duckdb explicit|auto <threads> <query> <seconds> <rows> <cpu seconds>
//   duckdb-version <version>
//   check  <query> <which> agree|differ <rows a> <rows b> <sum a> <sum b>
// Output: a human-readable table, the ratios against the targets of issue 2 (each marked met or
// not met), and a last line holding the same numbers as one JSON object.
// Exit status: 1 when any check says the answers differ (the numbers are then meaningless), else 0.
import { readFileSync } from 'node:fs';

const QUERIES = ['accredited_by_state', 'facility_metrics', 'expiring_accreditations'];
const RSS_TARGET_MB = 100; // MiB
const COLD_TARGET = 1; // hcpipe cold at least as fast as DuckDB with 2 threads
const WARM_TARGET = 10; // a warm query at least 10x faster than DuckDB re-reading the file

const meta = {};
const hcpipe = { cold: null, warm: {} };
const duck = {}; // duck[schema][threads][query] = {seconds, rows}
const checks = [];
let duckVersion = null;

for (const line of readFileSync(process.argv[2], 'utf8').split('\n')) {
    if (!line) continue;
    const f = line.split('\t');
    if (f[0] === 'meta') meta[f[1]] = f[2];
    else if (f[0] === 'duckdb-version') duckVersion = f[1];
    else if (f[0] === 'hcpipe') {
        const m = { seconds: Number(f[3]), maxrss_kb: Number(f[4]), rows: Number(f[5]), cpu: Number(f[6]) };
        if (f[1] === 'cold') hcpipe.cold = m;
        else hcpipe.warm[f[2]] = m;
    } else if (f[0] === 'duckdb') {
        const [, schema, threads, query, seconds, rows, cpu] = f;
        duck[schema] ??= {};
        duck[schema][threads] ??= {};
        duck[schema][threads][query] = { seconds: Number(seconds), rows: Number(rows), cpu: Number(cpu) };
    } else if (f[0] === 'check') {
        checks.push({ query: f[1], against: f[2], verdict: f[3], rows: [f[4], f[5]] });
    }
}

// The DuckDB time compared: the faster schema mode for each thread count and query.
function duckBest(threads, query) {
    let best = null;
    for (const schema of Object.keys(duck)) {
        const m = duck[schema]?.[threads]?.[query];
        if (m && (best === null || m.seconds < best.seconds)) best = { ...m, schema };
    }
    return best;
}

const mb = Number(meta.bytes) / 1e6;
const round = (x, d = 3) => (Number.isFinite(x) ? Number(x.toFixed(d)) : null);
const fmtS = (x) => (Number.isFinite(x) ? `${x.toFixed(2)} s` : 'n/a');
const fmtX = (x) => (Number.isFinite(x) ? `${x.toFixed(2)}x` : 'n/a');
const pad = (s, n) => String(s).padEnd(n);
const lpad = (s, n) => String(s).padStart(n);

const cold = hcpipe.cold;
const coldRssMb = cold ? cold.maxrss_kb / 1024 : NaN;
const loadMbS = cold ? mb / cold.seconds : NaN;
const warmAbs = hcpipe.warm.accredited_by_state;
const loadOnlyS = cold && warmAbs ? cold.seconds - warmAbs.seconds : NaN;

const out = [];
out.push('');
out.push(`hcpipe benchmark: ${meta.records} records, ${mb.toFixed(1)} MB NDJSON (seed ${meta.seed}), ` +
    `as_of ${meta.as_of}, ${meta.cpus} CPUs, load average ${meta.loadavg_before} -> ${meta.loadavg_after}`);
out.push(`DuckDB ${duckVersion ?? '?'} via @duckdb/node-api, read_json over the same file (page cache warm for both)`);
out.push('');
out.push(`${pad('engine', 34)}${pad('query', 26)}${lpad('wall', 10)}${lpad('cpu', 10)}${lpad('rows', 10)}   notes`);
out.push('-'.repeat(106));
if (cold) {
    out.push(`${pad('hcpipe cold (load + query)', 34)}${pad('accredited_by_state', 26)}` +
        `${lpad(fmtS(cold.seconds), 10)}${lpad(fmtS(cold.cpu), 10)}${lpad(cold.rows, 10)}   peak RSS ${coldRssMb.toFixed(1)} MiB, ` +
        `${loadMbS.toFixed(1)} MB/s (load only ~${(mb / loadOnlyS).toFixed(1)} MB/s)`);
}
for (const q of QUERIES) {
    const w = hcpipe.warm[q];
    if (w) {
        out.push(`${pad('hcpipe warm (loaded warehouse)', 34)}${pad(q, 26)}${lpad(fmtS(w.seconds), 10)}` +
            `${lpad(fmtS(w.cpu), 10)}${lpad(w.rows, 10)}   peak RSS ${(w.maxrss_kb / 1024).toFixed(1)} MiB`);
    }
}
for (const schema of Object.keys(duck)) {
    for (const threads of Object.keys(duck[schema])) {
        for (const q of QUERIES) {
            const m = duck[schema][threads][q];
            if (m) {
                out.push(`${pad(`duckdb ${schema} ${threads} thread${threads === '1' ? '' : 's'}`, 34)}` +
                    `${pad(q, 26)}${lpad(fmtS(m.seconds), 10)}${lpad(fmtS(m.cpu), 10)}${lpad(m.rows, 10)}`);
            }
        }
    }
}

const coldVs2 = duckBest('2', 'accredited_by_state');
const coldVs1 = duckBest('1', 'accredited_by_state');
const targets = [];
const coldRatio = cold && coldVs2 ? coldVs2.seconds / cold.seconds : NaN;
targets.push({
    name: 'cold_load_plus_accredited_by_state_vs_duckdb_2_threads',
    value: round(coldRatio, 2), target: `>= ${COLD_TARGET}x`, met: coldRatio >= COLD_TARGET,
    detail: `DuckDB 2 threads (${coldVs2?.schema}) ${fmtS(coldVs2?.seconds)} / hcpipe cold ${fmtS(cold?.seconds)}`,
});
const warmRatios = {};
for (const q of QUERIES) {
    const d = duckBest('2', q);
    const w = hcpipe.warm[q];
    const ratio = d && w ? d.seconds / w.seconds : NaN;
    warmRatios[q] = round(ratio, 2);
    targets.push({
        name: `warm_${q}_vs_duckdb_2_threads_rereading`, value: round(ratio, 2),
        target: `>= ${WARM_TARGET}x`, met: ratio >= WARM_TARGET,
        detail: `DuckDB 2 threads (${d?.schema}) ${fmtS(d?.seconds)} / hcpipe warm ${fmtS(w?.seconds)}`,
    });
}
targets.push({
    name: 'peak_rss_while_loading', value: round(coldRssMb, 1), target: `< ${RSS_TARGET_MB} MiB`,
    met: coldRssMb < RSS_TARGET_MB, detail: 'hcpipe cold run (load + accredited_by_state)',
});

out.push('');
out.push('Ratios (DuckDB time / hcpipe time; the faster DuckDB schema mode is used):');
out.push(`  ${pad('hcpipe cold vs DuckDB 1 thread', 58)}${lpad(fmtX(coldVs1 ? coldVs1.seconds / cold?.seconds : NaN), 9)}   (information)`);
for (const t of targets) {
    const shown = t.name === 'peak_rss_while_loading' ? `${t.value} MiB` : fmtX(t.value);
    out.push(`  ${pad(t.name, 58)}${lpad(shown, 9)}   target ${pad(t.target, 10)} ${t.met ? 'MET' : 'NOT MET'}   ${t.detail}`);
}

// The same comparisons in CPU time (user + system of the whole process): less sensitive to other
// load on a shared machine than wall time, shown as information only.
const cpuRatios = {};
{
    const d = duckBest('2', 'accredited_by_state');
    cpuRatios.cold_accredited_by_state = round(d && cold ? d.cpu / cold.cpu : NaN, 2);
    for (const q of QUERIES) {
        const dq = duckBest('2', q);
        const w = hcpipe.warm[q];
        cpuRatios[`warm_${q}`] = round(dq && w ? dq.cpu / w.cpu : NaN, 2);
    }
}
out.push('  CPU-time ratios (DuckDB 2 threads / hcpipe, information): ' +
    Object.entries(cpuRatios).map(([k, v]) => `${k} ${fmtX(v)}`).join(', '));

const differ = checks.filter((c) => c.verdict !== 'agree');
out.push('');
if (checks.length === 0) out.push('Answers: NOT CHECKED (no results to compare)');
else if (differ.length === 0) {
    out.push(`Answers: hcpipe and DuckDB agree on all ${checks.length} comparisons ` +
        `(row counts and checksums of ${QUERIES.join(', ')})`);
} else {
    for (const c of differ) {
        out.push(`Answers DIFFER: ${c.query} hcpipe vs ${c.against}: rows ${c.rows[0]} vs ${c.rows[1]}`);
    }
    out.push('The timings above compare different answers and are not valid.');
}
console.log(out.join('\n'));

const json = {
    bench: 'hcpipe',
    records: Number(meta.records), bytes: Number(meta.bytes), seed: Number(meta.seed),
    as_of: meta.as_of, cpus: Number(meta.cpus), loadavg_before: meta.loadavg_before,
    loadavg_after: meta.loadavg_after, warehouse_mb: round(Number(meta.warehouse_kb) / 1024, 1),
    hcpipe: {
        cold_s: cold?.seconds ?? null, cold_cpu_s: cold?.cpu ?? null, cold_peak_rss_mib: round(coldRssMb, 1),
        load_mb_s: round(loadMbS, 1), load_only_mb_s_estimate: round(mb / loadOnlyS, 1),
        warm_s: Object.fromEntries(QUERIES.map((q) => [q, hcpipe.warm[q]?.seconds ?? null])),
        warm_cpu_s: Object.fromEntries(QUERIES.map((q) => [q, hcpipe.warm[q]?.cpu ?? null])),
        rows: Object.fromEntries(QUERIES.map((q) => [q, hcpipe.warm[q]?.rows ?? null])),
    },
    duckdb: { version: duckVersion, runs: duck },
    ratios: { cold_vs_duckdb_t2: round(coldRatio, 2),
        cold_vs_duckdb_t1: round(coldVs1 && cold ? coldVs1.seconds / cold.seconds : NaN, 2),
        warm_vs_duckdb_t2: warmRatios, cpu_time_vs_duckdb_t2: cpuRatios },
    targets: Object.fromEntries(targets.map((t) => [t.name, { value: t.value, target: t.target, met: t.met }])),
    results_agree: checks.length > 0 && differ.length === 0,
};
console.log(JSON.stringify(json));
process.exit(json.results_agree ? 0 : 1);
