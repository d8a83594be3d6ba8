// The ceiling beside the bench's webhook-relay row: a bare node:http client
// POSTing COUNT bodies of BYTES bytes (with Standard Webhooks-shaped headers)
// to URL over CONCURRENCY keep-alive sockets, as fast as the receiver
// answers: what any relay written on node:http could deliver to that
// receiver on this machine. Spawned the way the bench spawns `rebill run`;
// prints one line `{"seconds":S,"cpuSeconds":C}` and exits.
// Usage: node bare-webhook-client.mjs URL COUNT BYTES CONCURRENCY
import http from 'node:http';

const [url, count, bytes, concurrency] = [new URL(process.argv[2]), Number(process.argv[3]), Number(process.argv[4]), Number(process.argv[5])];
const agent = new http.Agent({ keepAlive: true, maxSockets: concurrency });
const body = JSON.stringify({ id: 'evt_000000000001', type: 'charge.succeeded', data: { pad: 'x'.repeat(Math.max(0, bytes - 80)) } });
const headers = {
  'content-type': 'application/json',
  'content-length': Buffer.byteLength(body),
  'user-agent': 'rebill-webhooks',
  'webhook-timestamp': String(Math.floor(Date.now() / 1000)),
  'webhook-signature': `v1,${'A'.repeat(43)}=`,
};
const post = (n) =>
  new Promise((resolve, reject) => {
    const req = http.request({ hostname: url.hostname, port: url.port, path: url.pathname, method: 'POST', agent, headers: { ...headers, 'webhook-id': `bare_${n}` } }, (res) => {
      res.resume();
      res.on('end', () => (res.statusCode >= 200 && res.statusCode < 300 ? resolve() : reject(new Error(`HTTP ${res.statusCode}`))));
    });
    req.on('error', reject);
    req.end(body);
  });
const cpu0 = process.cpuUsage();
const from = performance.now();
let next = 0;
await Promise.all(Array.from({ length: concurrency }, async () => { while (next < count) await post(next++); }));
const seconds = (performance.now() - from) / 1000;
const cpu = process.cpuUsage(cpu0);
process.stdout.write(`${JSON.stringify({ seconds, cpuSeconds: (cpu.user + cpu.system) / 1e6 })}\n`);
agent.destroy();
