// SPDX-License-Identifier: MIT
// peer_usearch.js - the peer in ragd's benchmarks: USearch, an embedded HNSW vector index a user
// might pick instead of ragd (installed from npm with its prebuilt binary, bench/peer/), on the
// very vectors (PREFIX.vec, PREFIX.ids from bench_load) and query vectors (PREFIX.qvec from
// bench_floor, ragd's own local embeddings of the query texts) the others use, with the same k;
// HNSW parameters matched to ragd's FAISS HNSW (connectivity M, expansion_add 40 = FAISS's
// efConstruction, expansion_search = efSearch). Times one query at a time on one thread, and
// measures recall@k against PREFIX.gt (the exact top-k). Prints one JSON object.
// With --ef-sweep E1,E2,... the index is built once, saved, and loaded again with each
// expansion_search (USearch fixes it per Index object), and recall and latency are measured for
// each ("sweep"), so the ef that reaches a recall target can be chosen for USearch itself.
//
// Usage: node peer_usearch.js --vec PREFIX --dims D --k K --m M --ef E --rounds R
//                             [--ef-sweep E1,E2,...] [--tmp DIR]
'use strict';
const fs = require('fs');
const { Index, MetricKind } = require('usearch');

function arg(name, dflt) {
  const i = process.argv.indexOf('--' + name);
  return i > 0 ? process.argv[i + 1] : dflt;
}

function f32(path) {
  const b = fs.readFileSync(path);
  return new Float32Array(b.buffer, b.byteOffset, b.length / 4);
}

function i64(path) {
  const b = fs.readFileSync(path);
  return new BigInt64Array(b.buffer, b.byteOffset, b.length / 8);
}

function pct(sorted, p) {
  return sorted[Math.min(sorted.length - 1, Math.round((p / 100) * (sorted.length - 1)))];
}

const prefix = arg('vec');
const dims = Number(arg('dims'));
const k = Number(arg('k', 10));
const m = Number(arg('m', 32));
const ef = Number(arg('ef', 64));
const rounds = Number(arg('rounds', 3));
const vecs = f32(prefix + '.vec');
const ids = i64(prefix + '.ids');
const qv = f32(prefix + '.qvec');
const gt = i64(prefix + '.gt');
const n = ids.length;
const nq = qv.length / dims;

const rss0 = process.memoryUsage().rss;
const index = new Index({ dimensions: dims, metric: MetricKind.IP, connectivity: m,
                          expansion_add: 40, expansion_search: ef });
const t0 = process.hrtime.bigint();
const keys = new BigUint64Array(n);
for (let i = 0; i < n; i++) keys[i] = BigInt.asUintN(64, ids[i]);
index.add(keys, vecs, 2);
const buildS = Number(process.hrtime.bigint() - t0) / 1e9;

function measure(index) {
let hits = 0;
for (let q = 0; q < nq; q++) {
  const r = index.search(qv.subarray(q * dims, (q + 1) * dims), k, 1);
  const truth = new Set();
  for (let j = 0; j < k; j++) truth.add(BigInt.asUintN(64, gt[q * k + j]));
  for (const key of r.keys) if (truth.has(key)) hits++;
}
const lat = [];
const tq = process.hrtime.bigint();
for (let r = 0; r < rounds; r++) {
  for (let q = 0; q < nq; q++) {
    const s = process.hrtime.bigint();
    index.search(qv.subarray(q * dims, (q + 1) * dims), k, 1);
    lat.push(Number(process.hrtime.bigint() - s) / 1e6);
  }
}
const totalS = Number(process.hrtime.bigint() - tq) / 1e9;
lat.sort((a, b) => a - b);
return {
  p50_ms: +pct(lat, 50).toFixed(4), p95_ms: +pct(lat, 95).toFixed(4),
  p99_ms: +pct(lat, 99).toFixed(4), qps_1thread: +(lat.length / totalS).toFixed(1),
  recall_at_k: +(hits / (nq * k)).toFixed(4),
};
}

const out = Object.assign({
  peer: 'usearch', version: JSON.parse(fs.readFileSync(require.resolve('usearch').replace(/javascript\/.*$/, 'package.json'))).version, n, dims, k, m, ef,
  queries: nq, rounds, build_s: +buildS.toFixed(3),
  rss_growth_mib: +((process.memoryUsage().rss - rss0) / 1048576).toFixed(1),
}, measure(index));
const sweepArg = arg('ef-sweep', '');
if (sweepArg) {
  const os = require('os');
  const path = require('path');
  const dir = fs.mkdtempSync(path.join(arg('tmp', os.tmpdir()), 'usearch-'));
  const file = path.join(dir, 'index.usearch');
  index.save(file);
  out.sweep = [];
  for (const e of sweepArg.split(',').map(Number)) {
    const ix = new Index({ dimensions: dims, metric: MetricKind.IP, connectivity: m,
                           expansion_add: 40, expansion_search: e });
    ix.load(file);
    out.sweep.push(Object.assign({ ef: e }, measure(ix)));
  }
  fs.rmSync(dir, { recursive: true, force: true });
}
console.log(JSON.stringify(out));
