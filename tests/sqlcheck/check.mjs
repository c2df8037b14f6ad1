// Syntax check of rendered sql/athena/ texts with dt-sql-parser: the Hive grammar for the DDL
// (create_*.sql), the Trino grammar for the queries. Usage: node check.mjs FILE...
// Prints one line per file and exits 1 when any file has a syntax error.
import { readFileSync } from 'node:fs';
import { register } from 'node:module';
import { basename } from 'node:path';

register('./resolve-hook.mjs', import.meta.url);
const { HiveSQL, TrinoSQL } = await import('dt-sql-parser');
const hive = new HiveSQL();
const trino = new TrinoSQL();
let bad = 0;
for (const file of process.argv.slice(2)) {
    const sql = readFileSync(file, 'utf8');
    const ddl = basename(file).startsWith('create_');
    const errors = (ddl ? hive : trino).validate(sql);
    if (errors.length) {
        bad++;
        console.log(`FAIL ${file} (${ddl ? 'hive' : 'trino'}):`);
        for (const e of errors)
            console.log(`  ${e.startLine}:${e.startColumn} ${e.message}`);
    } else {
        console.log(`ok   ${file} (${ddl ? 'hive' : 'trino'})`);
    }
}
process.exit(bad ? 1 : 0);
