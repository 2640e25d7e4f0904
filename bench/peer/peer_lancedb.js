// SPDX-License-Identifier: MIT
// peer_lancedb.js - the second peer in ragd's benchmarks: LanceDB (embedded vector database,
// @lancedb/lancedb from npm with its prebuilt native module, bench/peer/), on the very vectors
// (PREFIX.vec, PREFIX.ids from bench_load) and query vectors (PREFIX.qvec from bench_floor) the
// others use, with the same k, measuring recall@k against PREFIX.gt (the exact top-k).
//
// Two measurements, one table in a temporary directory:
//  - brute force (no index, `bypassVectorIndex`): LanceDB's exact scan, beside ragd's Flat;
//    with --brute-queries Q only the first Q queries (a scan of 100k x 384 takes hundreds of ms;
//    0 skips it).
//  - HNSW: an IVF_HNSW_SQ index with one partition (so it is one HNSW graph, as FAISS's
//    IndexHNSWFlat and USearch are; LanceDB's HNSW always scalar-quantises the vectors) with
//    m = M and ef_construction 40 (FAISS's efConstruction); then, for every ef of --ef-sweep,
//    recall and latency, so the ef that reaches a recall target is chosen for LanceDB itself
//    (LanceDB requires ef >= k: smaller values are raised to k).
// Every query is one awaited `table.vectorSearch(q).distanceType('dot').limit(k)` returning the
// ids only, one at a time: what a Node caller pays per query. Prints one JSON object.
//
// With --rounds-stdin it then keeps the indexed table and reads commands from stdin, one per
// line, "EF PASSES": it measures the HNSW at that ef over PASSES passes of the queries and prints
// one JSON line (the sweep's fields); end of input ends it. bench_scale.py alternates these with
// ragd's requests, round by round, so both are timed side by side on a shared machine.
//
// Usage: node peer_lancedb.js --vec PREFIX --dims D --k K --m M --rounds R
//                             [--ef-sweep E1,E2,...] [--brute-queries Q] [--no-index] [--tmp DIR]
//                             [--rounds-stdin]
'use strict';
const fs = require('fs');
const os = require('os');
const path = require('path');
const arrow = require('apache-arrow');
const lancedb = require('@lancedb/lancedb');

function arg(name, dflt) {
  const i = process.argv.indexOf('--' + name);
  return i > 0 ? process.argv[i + 1] : dflt;
}

function f32(p) {
  const b = fs.readFileSync(p);
  return new Float32Array(b.buffer, b.byteOffset, b.length / 4);
}

function i64(p) {
  const b = fs.readFileSync(p);
  return new BigInt64Array(b.buffer, b.byteOffset, b.length / 8);
}

function pct(sorted, p) {
  return sorted[Math.min(sorted.length - 1, Math.round((p / 100) * (sorted.length - 1)))];
}

function version() {
  let dir = path.dirname(require.resolve('@lancedb/lancedb'));
  while (!fs.existsSync(path.join(dir, 'package.json'))) dir = path.dirname(dir);
  return JSON.parse(fs.readFileSync(path.join(dir, 'package.json'))).version;
}

const prefix = arg('vec');
const dims = Number(arg('dims'));
const k = Number(arg('k', 10));
const m = Number(arg('m', 32));
const rounds = Number(arg('rounds', 3));
const sweep = arg('ef-sweep', '16,32,64,128,256,512').split(',').filter(Boolean).map(Number);
const vecs = f32(prefix + '.vec');
const ids = i64(prefix + '.ids');
const qv = f32(prefix + '.qvec');
const gt = i64(prefix + '.gt');
const n = ids.length;
const nq = qv.length / dims;
const bruteQ = Math.min(nq, Number(arg('brute-queries', nq)));

// One query: the ids of the top k. `tune` sets ef / nprobes / bypass on the query builder.
async function search(table, q, tune) {
  const qb = tune(table.vectorSearch(Array.from(qv.subarray(q * dims, (q + 1) * dims)))
    .distanceType('dot').limit(k).select(['id', '_distance']));
  const rows = await qb.toArray();
  return rows.map((r) => BigInt(r.id));
}

// Recall over queries [0, nq2) once, then latency over `rounds` passes.
async function measure(table, nq2, tune, passes) {
  let hits = 0;
  for (let q = 0; q < nq2; q++) {
    const truth = new Set();
    for (let j = 0; j < k; j++) truth.add(gt[q * k + j]);
    for (const id of await search(table, q, tune)) if (truth.has(id)) hits++;
  }
  const lat = [];
  const t0 = process.hrtime.bigint();
  for (let r = 0; r < passes; r++) {
    for (let q = 0; q < nq2; q++) {
      const s = process.hrtime.bigint();
      await search(table, q, tune);
      lat.push(Number(process.hrtime.bigint() - s) / 1e6);
    }
  }
  const totalS = Number(process.hrtime.bigint() - t0) / 1e9;
  lat.sort((a, b) => a - b);
  return {
    queries: nq2, rounds: passes,
    p50_ms: +pct(lat, 50).toFixed(4), p95_ms: +pct(lat, 95).toFixed(4),
    p99_ms: +pct(lat, 99).toFixed(4), qps_1thread: +(lat.length / totalS).toFixed(1),
    recall_at_k: +(hits / (nq2 * k)).toFixed(4),
  };
}

async function main() {
  const dir = fs.mkdtempSync(path.join(arg('tmp', os.tmpdir()), 'lancedb-'));
  const out = { peer: 'lancedb', version: version(), n, dims, k, m, queries: nq };
  try {
    const rss0 = process.memoryUsage().rss;
    // The table: id int64, vector fixed_size_list<float32>[dims], built from the files' buffers.
    const child = arrow.makeData({ type: new arrow.Float32(), length: n * dims, data: vecs });
    const listType = new arrow.FixedSizeList(dims, new arrow.Field('item', new arrow.Float32(), true));
    const vecData = arrow.makeData({ type: listType, length: n, nullCount: 0, child });
    const idData = arrow.makeData({ type: new arrow.Int64(), length: n, data: ids });
    const tbl = new arrow.Table({ id: arrow.makeVector(idData), vector: arrow.makeVector(vecData) });
    const db = await lancedb.connect(dir);
    let t = process.hrtime.bigint();
    const table = await db.createTable('bench', tbl);
    out.load_s = +(Number(process.hrtime.bigint() - t) / 1e9).toFixed(3);
    if (bruteQ > 0) out.brute = await measure(table, bruteQ, (qb) => qb.bypassVectorIndex(), 1);
    if (!process.argv.includes('--no-index')) {
      t = process.hrtime.bigint();
      await table.createIndex('vector', {
        config: lancedb.Index.hnswSq({ distanceType: 'dot', numPartitions: 1, m,
                                       efConstruction: 40 }),
      });
      out.index = 'IVF_HNSW_SQ, 1 partition, m ' + m + ', ef_construction 40';
      out.build_s = +(Number(process.hrtime.bigint() - t) / 1e9).toFixed(3);
      out.sweep = [];
      // LanceDB refuses ef < k; such points are measured at ef = k (the JSON says which).
      for (const ef of [...new Set(sweep.map((e) => Math.max(e, k)))]) {
        const r = await measure(table, nq, (qb) => qb.nprobes(1).ef(ef), rounds);
        out.sweep.push(Object.assign({ ef }, r));
      }
    }
    out.rss_growth_mib = +((process.memoryUsage().rss - rss0) / 1048576).toFixed(1);
    console.log(JSON.stringify(out));
    if (process.argv.includes('--rounds-stdin') && out.sweep) await serveRounds(table);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

// The --rounds-stdin commands: "EF PASSES" per line, one JSON line of measure() back for each.
async function serveRounds(table) {
  const lines = require('readline').createInterface({ input: process.stdin });
  for await (const line of lines) {
    const [ef, passes] = line.trim().split(/\s+/).map(Number);
    if (!(ef >= 1) || !(passes >= 1)) {
      console.log(JSON.stringify({ error: 'expected "EF PASSES", got ' + JSON.stringify(line) }));
      continue;
    }
    const r = await measure(table, nq, (qb) => qb.nprobes(1).ef(Math.max(ef, k)), passes);
    console.log(JSON.stringify(Object.assign({ ef: Math.max(ef, k) }, r)));
  }
}

main().catch((e) => {
  console.error(e && e.stack ? e.stack : String(e));
  process.exit(1);
});
