// Sends records to logsinkd with the npm fluent-logger (test_forward.py).
//
// node fluent_send.js MODULES PORT MODE N BATCH ACK_TIMEOUT_MS PROGRESS [TLS_CA]
//
// MODE is fluent-logger's eventMode (Message, PackedForward,
// CompressedPackedForward); requireAckResponse is on.  Records are emitted
// BATCH at a time; a batch is done when every record has its callback.
// A record whose callback reports an error (ack timeout, connection lost)
// is sent again by the application on a new sender: fluent-logger itself
// stops sending on a connection whose ack timed out.  Every record is
// {message: "fl-<i>", level: "info", host: "nodehost", seq: i,
// nested: {a: [1, 2]}}; every third one carries an EventTime.  With
// FLUENT_SHARED_KEY set, the sender does the shared-key handshake.  Lines of
// PROGRESS: "acked N", "error MSG"; the last line of stdout is the
// summary {acked, errors, rounds} once every record was acknowledged.
'use strict';

const fs = require('fs');
const [modules, port, mode, n, batch, ackTimeout, progress, ca] =
    process.argv.slice(2);
const logger = require(modules + '/node_modules/fluent-logger');
const quiet = { info() {}, error() {}, warn() {}, log() {} };

let acked = 0;
let errors = 0;
let rounds = 0;
const done = new Set();

function note(line) {
  fs.appendFileSync(progress, line + '\n');
}

function newSender() {
  rounds++;
  const opts = {
    host: '127.0.0.1',
    port: Number(port),
    eventMode: mode,
    requireAckResponse: true,
    ackResponseTimeout: Number(ackTimeout),
    flushInterval: 10,
    reconnectInterval: 200,
    internalLogger: quiet,
  };
  if (process.env.FLUENT_SHARED_KEY) {
    opts.security = { clientHostname: 'fluent-test-client',
                      sharedKey: process.env.FLUENT_SHARED_KEY };
  }
  if (ca) {
    opts.tls = true;
    opts.tlsOptions = { ca: fs.readFileSync(ca), servername: 'localhost' };
  }
  const s = logger.createFluentSender('fl', opts);
  s.on('error', () => {});
  return s;
}

function record(i) {
  return { message: 'fl-' + i, level: 'info', host: 'nodehost', seq: i,
           nested: { a: [1, 2] } };
}

// Sends the records of todo on sender s; resolves with those not acked.
function sendBatch(s, todo) {
  return new Promise((resolve) => {
    let left = todo.length;
    const failed = [];
    let timer = null;
    const finish = () => {
      clearTimeout(timer);
      resolve(failed.concat(todo.filter((i) => !done.has(i) &&
                                              !failed.includes(i) &&
                                              !pending.has(i))));
    };
    const pending = new Set(todo);
    // A sender whose ack timed out sends nothing more: give up on it
    // after two timeouts without any callback.
    const arm = () => {
      clearTimeout(timer);
      timer = setTimeout(() => {
        for (const i of pending) failed.push(i);
        pending.clear();
        finish();
      }, 2 * Number(ackTimeout) + 1000);
    };
    arm();
    for (const i of todo) {
      const cb = (err) => {
        if (!pending.has(i)) return;
        pending.delete(i);
        if (err) {
          errors++;
          note('error ' + (err.message || err));
          failed.push(i);
        } else {
          done.add(i);
          acked++;
        }
        arm();
        if (--left === 0) finish();
      };
      if (i % 3 === 0)
        s.emit('test', record(i), logger.EventTime.now(), cb);
      else
        s.emit('test', record(i), cb);
    }
  });
}

async function main() {
  const total = Number(n);
  const step = Number(batch);
  let s = newSender();
  for (let first = 0; first < total; first += step) {
    let todo = [];
    for (let i = first; i < Math.min(total, first + step); i++) todo.push(i);
    while (todo.length > 0) {
      todo = await sendBatch(s, todo);
      if (todo.length > 0) {
        s._disconnect();
        s = newSender();
      }
    }
    note('acked ' + acked);
  }
  s.end();
  console.log(JSON.stringify({ acked, errors, rounds }));
  process.exit(0);
}

main();
