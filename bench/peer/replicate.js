// The peer of bench.apply_rate: PouchDB replicating documents to express-pouchdb over loopback HTTP.
// Usage: node replicate.js DOCS.jsonl memory|leveldb WORKDIR
// Prints one JSON object: documents, seconds, docs_per_s, requests, request_body_bytes, response_body_bytes.
'use strict';
const fs = require('fs');
const path = require('path');
const express = require('express');
const PouchDB = require('pouchdb-core')
  .plugin(require('pouchdb-adapter-http'))
  .plugin(require('pouchdb-adapter-memory'))
  .plugin(require('pouchdb-adapter-leveldb'))
  .plugin(require('pouchdb-mapreduce'))
  .plugin(require('pouchdb-replication'));

const [docsFile, adapter, workdir] = process.argv.slice(2);
if (!docsFile || !['memory', 'leveldb'].includes(adapter) || !workdir) {
  console.error('usage: node replicate.js DOCS.jsonl memory|leveldb WORKDIR');
  process.exit(2);
}
fs.mkdirSync(workdir, { recursive: true });
const serverOptions = adapter === 'memory' ? { adapter: 'memory' } : { adapter: 'leveldb', prefix: path.join(workdir, 'db-') };
const ServerDB = PouchDB.defaults(serverOptions);

// Count what crosses the link the way bench.apply_rate counts Sanji's: requests and body bytes each way.
const counts = { requests: 0, up: 0, down: 0, chunked: 0 };
const app = express();
app.use((req, res, next) => {
  counts.requests += 1;
  // Content-Length, not a 'data' listener: listening would start the stream before the body parser reads it.
  const length = Number(req.headers['content-length'] || 0);
  counts.up += length;
  if (!length && req.headers['transfer-encoding']) counts.chunked += 1;
  const write = res.write;
  const end = res.end;
  const size = (chunk, encoding) => (chunk && typeof chunk !== 'function' ? Buffer.byteLength(chunk, typeof encoding === 'string' ? encoding : undefined) : 0);
  res.write = function (chunk, encoding, ...rest) { counts.down += size(chunk, encoding); return write.call(this, chunk, encoding, ...rest); };
  res.end = function (chunk, encoding, ...rest) { counts.down += size(chunk, encoding); return end.call(this, chunk, encoding, ...rest); };
  next();
});
app.use('/', require('express-pouchdb')(ServerDB, {
  mode: 'minimumForPouchDB',
  inMemoryConfig: true,
  logPath: path.join(workdir, 'express-pouchdb.log'),
}));

const server = app.listen(0, '127.0.0.1', async () => {
  try {
    const url = `http://127.0.0.1:${server.address().port}/target`;
    const docs = fs.readFileSync(docsFile, 'utf8').split('\n').filter((line) => line).map((line) => JSON.parse(line));
    const source = new PouchDB('source', { adapter: 'memory' });
    for (let i = 0; i < docs.length; i += 1000) await source.bulkDocs(docs.slice(i, i + 1000));
    await new PouchDB(url).info(); // create the target before the clock starts, as Sanji's county exists before it ingests
    counts.requests = 0; counts.up = 0; counts.down = 0; counts.chunked = 0;
    const started = process.hrtime.bigint();
    const result = await PouchDB.replicate(source, url, { batch_size: 100 });
    const seconds = Number(process.hrtime.bigint() - started) / 1e9;
    const held = (await new PouchDB(url).info()).doc_count;
    const moved = { ...counts };
    if (held !== docs.length || result.docs_written !== docs.length) {
      throw new Error(`replication moved ${result.docs_written} of ${docs.length} documents; the target holds ${held}`);
    }
    process.stdout.write(JSON.stringify({
      adapter,
      documents: docs.length,
      seconds,
      docs_per_s: docs.length / seconds,
      requests: moved.requests,
      request_body_bytes: moved.up,
      response_body_bytes: moved.down,
      batch_size: 100,
      requests_without_length: moved.chunked,
    }) + '\n');
    server.close();
    process.exit(0);
  } catch (err) {
    console.error(JSON.stringify(err), String(err && err.stack || err));
    server.close();
    process.exit(1);
  }
});
