// The ceiling beside the bench's webhook-relay row: a bare client on the
// relay's own HTTP library (an undici Pool driven through `dispatch`, as
// src/gateways/http-connections.ts does) POSTing COUNT bodies of BYTES bytes
// (with Standard Webhooks-shaped headers) to URL, CONCURRENCY at a time, as
// fast as the receiver answers: what a relay with no other work could deliver
// to that receiver on this machine. Spawned the way the bench spawns
// `rebill run`; prints one line `{"seconds":S,"cpuSeconds":C}` and exits.
// Usage: node bare-webhook-client.mjs URL COUNT BYTES CONCURRENCY
import { Pool } from 'undici';

const [url, count, bytes, concurrency] = [new URL(process.argv[2]), Number(process.argv[3]), Number(process.argv[4]), Number(process.argv[5])];
const pool = new Pool(url.origin);
const body = JSON.stringify({ id: 'evt_000000000001', type: 'charge.succeeded', data: { pad: 'x'.repeat(Math.max(0, bytes - 80)) } });
const headers = ['content-type', 'application/json', 'user-agent', 'rebill-webhooks', 'webhook-timestamp', String(Math.floor(Date.now() / 1000)), 'webhook-signature', `v1,${'A'.repeat(43)}=`];
const post = (n) =>
  new Promise((resolve, reject) => {
    let status = 0;
    pool.dispatch(
      { method: 'POST', path: url.pathname, headers: [...headers, 'webhook-id', `bare_${n}`], body },
      {
        onRequestStart() {},
        onResponseStart(_c, code) {
          status = code;
        },
        onResponseData() {},
        onResponseEnd() {
          if (status >= 200 && status < 300) resolve();
          else reject(new Error(`HTTP ${status}`));
        },
        onResponseError(_c, err) {
          reject(err);
        },
      },
    );
  });
const cpu0 = process.cpuUsage();
const from = performance.now();
let next = 0;
await Promise.all(Array.from({ length: concurrency }, async () => { while (next < count) await post(next++); }));
const seconds = (performance.now() - from) / 1000;
const cpu = process.cpuUsage(cpu0);
process.stdout.write(`${JSON.stringify({ seconds, cpuSeconds: (cpu.user + cpu.system) / 1e6 })}\n`);
await pool.destroy();
