#!/usr/bin/env node
/*
 * bench-json-to-md.js — prints the JSON written by vecfs-bench-engine --json
 * as Markdown tables (one per engine, then a summary at recall 0.95), so the
 * figures in docs/performance.md are the program's own, not retyped.
 *
 * Usage: node bench/bench-json-to-md.js RESULT.json
 */
'use strict';

const fs = require('fs');

function die(msg) {
    process.stderr.write('bench-json-to-md: ' + msg + '\n');
    process.exit(1);
}

const file = process.argv[2];
if (!file)
    die('usage: bench-json-to-md.js RESULT.json');
let doc;
try {
    doc = JSON.parse(fs.readFileSync(file, 'utf8'));
} catch (e) {
    die(`${file}: ${e.message}`);
}
if (!doc.dataset || !Array.isArray(doc.engines))
    die(`${file}: not a vecfs-bench-engine result`);

const d = doc.dataset;
const out = [];
out.push(`${d.base} base vectors x ${d.dim}, ${d.queries} queries, metric ${d.metric}` +
         (d.duplicates === undefined ? '.' : `, generated with ${d.duplicates} % duplicate rows.`));
out.push('');
for (const e of doc.engines) {
    out.push(`**${e.name}** — build ${e.build_seconds.toFixed(2)} s, ` +
             `${e.bytes_per_vector.toFixed(1)} bytes/vector`);
    out.push('');
    out.push('| ef | recall@10 | by distance | QPS | mean µs | p99 µs | copy misses |');
    out.push('|---:|---:|---:|---:|---:|---:|---:|');
    for (const r of e.runs)
        out.push(`| ${r.ef === 0 ? 'exact' : r.ef} | ${r.recall.toFixed(4)} | ` +
                 `${r.recall_distance.toFixed(4)} | ${r.qps.toFixed(0)} | ` +
                 `${r.mean_us.toFixed(1)} | ${r.p99_us.toFixed(1)} | ${r.copy_misses} |`);
    out.push('');
}
out.push('Summary: the fastest run with recall@10 >= 0.95 (by id).');
out.push('');
out.push('| engine | ef | recall@10 | by distance | QPS | build s | bytes/vector |');
out.push('|---|---:|---:|---:|---:|---:|---:|');
for (const e of doc.engines) {
    let best = null;
    for (const r of e.runs)
        if (r.recall >= 0.95 && (best === null || r.qps > best.qps))
            best = r;
    if (best === null)
        out.push(`| ${e.name} | — | (max ${Math.max(...e.runs.map((r) => r.recall)).toFixed(4)}) | ` +
                 `(max ${Math.max(...e.runs.map((r) => r.recall_distance)).toFixed(4)}) | — | ` +
                 `${e.build_seconds.toFixed(2)} | ${e.bytes_per_vector.toFixed(1)} |`);
    else
        out.push(`| ${e.name} | ${best.ef === 0 ? 'exact' : best.ef} | ${best.recall.toFixed(4)} | ` +
                 `${best.recall_distance.toFixed(4)} | ${best.qps.toFixed(0)} | ` +
                 `${e.build_seconds.toFixed(2)} | ${e.bytes_per_vector.toFixed(1)} |`);
}
process.stdout.write(out.join('\n') + '\n');
