#!/usr/bin/env node
/**
 * A minimal webhook receiver for the compose stack (docker-compose.yml): it
 * verifies each delivery's Standard Webhooks signature (webhook-id,
 * webhook-timestamp, webhook-signature) with the secret rebill signs with,
 * logs one JSON line per delivery on stdout, and answers 204 when the
 * signature is good, 401 when it is not (rebill then retries).
 *
 *   WEBHOOK_SECRET=whsec_... [HOST=0.0.0.0] [PORT=8090] node deploy/webhook-receiver.mjs
 *
 * The secret is never logged. PORT=0 picks a free port (the ready line says which).
 */
import { createServer } from 'node:http';
import { Webhook } from 'standardwebhooks';

const secret = process.env.WEBHOOK_SECRET;
if (!secret) {
  process.stderr.write('webhook-receiver: set WEBHOOK_SECRET (the secret of the webhooks: entry in rebill.yaml)\n');
  process.exit(78);
}
const webhook = new Webhook(secret);
const host = process.env.HOST ?? '0.0.0.0';
const port = Number(process.env.PORT ?? 8090);
const MAX_BODY = 1024 * 1024;

const log = (fields) => process.stdout.write(`${JSON.stringify({ time: new Date().toISOString(), ...fields })}\n`);

const server = createServer((request, response) => {
  if (request.method !== 'POST') {
    response.writeHead(request.url === '/healthz' ? 200 : 405, { 'content-type': 'application/json' }).end('{"status":"pass"}');
    return;
  }
  const chunks = [];
  let size = 0;
  request.on('data', (chunk) => {
    size += chunk.length;
    if (size > MAX_BODY) request.destroy();
    else chunks.push(chunk);
  });
  request.on('end', () => {
    const body = Buffer.concat(chunks).toString('utf8');
    const id = request.headers['webhook-id'];
    try {
      const event = webhook.verify(body, request.headers);
      log({ msg: 'delivery', verified: true, webhookId: id, type: event?.type, eventId: event?.id ?? null });
      response.writeHead(204).end();
    } catch (err) {
      log({ msg: 'delivery rejected', verified: false, webhookId: id ?? null, reason: err instanceof Error ? err.message : String(err) });
      response.writeHead(401, { 'content-type': 'application/json' }).end('{"error":"invalid signature"}');
    }
  });
});

server.listen(port, host, () => {
  const address = server.address();
  log({ msg: 'webhook-receiver listening', url: `http://${host}:${typeof address === 'object' && address ? address.port : port}` });
});

for (const signal of ['SIGTERM', 'SIGINT']) process.once(signal, () => server.close(() => process.exit(0)));
