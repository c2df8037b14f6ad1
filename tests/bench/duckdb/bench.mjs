// The DuckDB side of the hcpipe benchmark (tests/bench/run.sh runs it; `make bench`).
//
// Runs the three pipeline queries of issue 2 with DuckDB (npm @duckdb/node-api, pinned in
// tests/bench/package.json) straight over an NDJSON file with read_json, and times each one.
// Every measurement uses a fresh in-memory DuckDB instance (no cache survives between runs; the
// external file cache is switched off), sets `threads`, and runs
//   COPY (<query>) TO '<out>/duckdb-<schema>-t<threads>-<query>.csv' (HEADER)
// so DuckDB does what `hcpipe run --format csv --output FILE` does: read, compute, write a CSV.
// run.sh compares those CSV files with hcpipe's (row counts and checksums).
//
// Schema modes: "explicit" gives read_json a columns={...} spec (no inference); "auto" lets
// DuckDB infer the schema from a sample. Dates are CAST to DATE in the queries so both modes
// have the same semantics whatever auto-detection decides.
//
// Output: one tab-separated line per measurement on stdout,
//   duckdb <schema> <threads> <query> <seconds> <rows> <cpu seconds, user + system>
// and a line `duckdb-version <version>` first.
//
// Usage: node bench.mjs --file F --as-of YYYY-MM-DD --out DIR [--threads 1,2]
//                       [--schema explicit,auto] [--queries q1,q2] [--repeat N]
import { DuckDBInstance } from '@duckdb/node-api';

function parseArgs(argv) {
    const opts = {
        threads: '1,2',
        schema: 'explicit,auto',
        queries: 'accredited_by_state,facility_metrics,expiring_accreditations',
        repeat: '1',
    };
    for (let i = 0; i < argv.length; i += 2) {
        const key = argv[i].replace(/^--/, '').replace(/-/g, '_');
        if (argv[i + 1] === undefined) throw new Error(`missing value for ${argv[i]}`);
        opts[key] = argv[i + 1];
    }
    for (const k of ['file', 'as_of', 'out']) {
        if (!opts[k]) throw new Error(`--${k.replace(/_/g, '-')} is required`);
    }
    if (!/^\d{4}-\d{2}-\d{2}$/.test(opts.as_of)) throw new Error('--as-of must be YYYY-MM-DD');
    return opts;
}

const sqlString = (s) => `'${String(s).replace(/'/g, "''")}'`;

const COLUMNS = `{
    facility_id: 'VARCHAR',
    facility_name: 'VARCHAR',
    location: 'STRUCT(address VARCHAR, city VARCHAR, state VARCHAR, zip VARCHAR)',
    employee_count: 'BIGINT',
    services: 'VARCHAR[]',
    labs: 'STRUCT(lab_name VARCHAR, certifications VARCHAR[])[]',
    accreditations: 'STRUCT(accreditation_body VARCHAR, accreditation_id VARCHAR, valid_until DATE)[]'
}`;

function source(file, schema) {
    if (schema === 'explicit') {
        return `read_json(${sqlString(file)}, format = 'newline_delimited', columns = ${COLUMNS})`;
    }
    if (schema === 'auto') return `read_json(${sqlString(file)}, format = 'newline_delimited')`;
    throw new Error(`unknown schema mode ${schema}`);
}

// The three queries, with the exact semantics of issue 2. A valid object never repeats a
// facility_id (hcpipe rejects such a record), so every row of the file is one current facility
// and count(*) counts distinct facilities.
const QUERIES = {
    accredited_by_state: (src, asOf) => `
        SELECT state,
               count(*)::BIGINT AS facility_count,
               sum(coalesce(employee_count, 0))::BIGINT AS total_employees,
               sum(n)::BIGINT AS valid_accreditations
        FROM (SELECT location.state AS state, employee_count,
                     len(list_filter(accreditations,
                                     lambda a: CAST(a.valid_until AS DATE) >= DATE '${asOf}')) AS n
              FROM ${src})
        WHERE n > 0
        GROUP BY state
        ORDER BY facility_count DESC, state ASC NULLS LAST`,
    facility_metrics: (src) => `
        SELECT facility_id, facility_name, employee_count,
               coalesce(len(services), 0)::BIGINT AS number_of_offered_services,
               CAST(struct_extract(accreditations[1], 'valid_until') AS DATE)
                   AS expiry_date_of_first_accreditation
        FROM ${src}
        ORDER BY facility_id ASC NULLS LAST`,
    expiring_accreditations: (src, asOf) => `
        SELECT facility_id, facility_name, state,
               struct_extract(a, 'accreditation_body') AS accreditation_body,
               CAST(struct_extract(a, 'valid_until') AS DATE) AS valid_until,
               (CAST(struct_extract(a, 'valid_until') AS DATE) - DATE '${asOf}')::BIGINT AS days_left
        FROM (SELECT facility_id, facility_name, location.state AS state,
                     unnest(accreditations) AS a
              FROM ${src})
        WHERE CAST(struct_extract(a, 'valid_until') AS DATE)
              BETWEEN DATE '${asOf}' AND CAST(DATE '${asOf}' + INTERVAL 6 MONTH AS DATE)
        ORDER BY valid_until ASC NULLS LAST, facility_id ASC NULLS LAST,
                 accreditation_body ASC NULLS LAST`,
};

async function measure(opts, schema, threads, query) {
    const instance = await DuckDBInstance.create(':memory:', { threads: String(threads) });
    const conn = await instance.connect();
    try {
        try {
            await conn.run('SET enable_external_file_cache = false');
        } catch {
            // Older DuckDB without this setting: nothing is cached anyway.
        }
        const out = `${opts.out}/duckdb-${schema}-t${threads}-${query}.csv`;
        const sql = `COPY (${QUERIES[query](source(opts.file, schema), opts.as_of)}) TO ${sqlString(
            out
        )} (FORMAT csv, HEADER true)`;
        const c0 = process.cpuUsage();
        const t0 = process.hrtime.bigint();
        const reader = await conn.runAndReadAll(sql);
        const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
        const c1 = process.cpuUsage(c0);
        const cpu = (c1.user + c1.system) / 1e6;
        const rows = Number(reader.getRows()[0][0]);
        return { seconds, rows, cpu };
    } finally {
        conn.closeSync();
        instance.closeSync();
    }
}

async function main() {
    const opts = parseArgs(process.argv.slice(2));
    const probe = await DuckDBInstance.create(':memory:');
    const pc = await probe.connect();
    const version = (await pc.runAndReadAll('SELECT version()')).getRows()[0][0];
    pc.closeSync();
    probe.closeSync();
    console.log(`duckdb-version\t${version}`);
    const repeat = Math.max(1, parseInt(opts.repeat, 10) || 1);
    for (const schema of opts.schema.split(',')) {
        for (const threads of opts.threads.split(',').map(Number)) {
            for (const query of opts.queries.split(',')) {
                if (!QUERIES[query]) throw new Error(`unknown query ${query}`);
                let best = null;
                for (let r = 0; r < repeat; r++) {
                    const m = await measure(opts, schema, threads, query);
                    if (best === null || m.seconds < best.seconds) best = m;
                }
                console.log(
                    ['duckdb', schema, threads, query, best.seconds.toFixed(3), best.rows, best.cpu.toFixed(3)].join('\t')
                );
            }
        }
    }
}

main().catch((err) => {
    console.error(`duckdb bench: ${err.message}`);
    process.exit(1);
});
