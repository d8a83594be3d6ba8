// The baseline of the bench's api-create scenario: fastify with one route,
// POST /v1/subscriptions answering 201 with a small JSON body at once, spawned
// the way the bench spawns `rebill run` (node, the same preload, loopback).
// Usage: node bare-server.mjs PORT
import Fastify from 'fastify';

const port = Number(process.argv[2]);
const app = Fastify({ logger: false });
let created = 0;
app.post('/v1/subscriptions', async (request, reply) => {
  created++;
  return reply.code(201).send({ id: `sub_${created}`, planId: request.body?.planId ?? null, status: 'active' });
});
await app.listen({ host: '127.0.0.1', port });
process.stdout.write(`bare server listening on ${port}\n`);
const stop = async () => {
  await app.close();
  process.exit(0);
};
process.once('SIGTERM', stop);
process.once('SIGINT', stop);
