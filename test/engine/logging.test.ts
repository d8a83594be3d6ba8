/**
 * Logs (STYLE.md): structured pino lines, one event per line, with
 * subscriptionId / cycle / attempt; card tokens and secrets redacted.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { DestinationStream } from 'pino';
import { VirtualClock } from '../../src/clock.js';
import { createLogger } from '../../src/logger.js';
import { nextWorkAt } from '../../src/store/index.js';
import { addSubscription, daemonEngine, ms, openTempDb, type TempDb } from '../support/engine-harness.js';

/** A pino destination that keeps every line. */
function capture(): DestinationStream & { lines: string[]; records(): Array<Record<string, unknown>> } {
  const lines: string[] = [];
  return {
    lines,
    write(line: string) {
      lines.push(line);
    },
    records() {
      return lines.flatMap((chunk) => chunk.split('\n').filter(Boolean)).map((l) => JSON.parse(l) as Record<string, unknown>);
    },
  };
}

const SECRETS = ['tok_SECRET_card', 'ak_SECRET_key', 'whsec_SECRET', 'adm_SECRET_token', 'Bearer SECRET_bearer', 'Basic SECRET_basic'];

describe('createLogger redaction', () => {
  const shapes: Array<[string, Record<string, unknown>]> = [
    ['top-level fields', { paymentToken: 'tok_SECRET_card', apiKey: 'ak_SECRET_key', secret: 'whsec_SECRET', token: 'adm_SECRET_token', authorization: 'Bearer SECRET_bearer' }],
    ['one level down', { subscription: { id: 'sub-1', paymentToken: 'tok_SECRET_card' }, gateway: { apiKey: 'ak_SECRET_key' }, webhook: { secret: 'whsec_SECRET' }, admin: { token: 'adm_SECRET_token' } }],
    ['two levels down', { request: { body: { paymentToken: 'tok_SECRET_card', apiKey: 'ak_SECRET_key', secret: 'whsec_SECRET' } } }],
    ['the gateways section of a config', { gateways: { coolpay: { type: 'coolpay', apiKey: 'ak_SECRET_key' } } }],
    ['arrays of webhooks, admin tokens and subscriptions', { webhooks: [{ url: 'https://h.example', secret: 'whsec_SECRET' }], tokens: [{ token: 'adm_SECRET_token', scope: 'write' }], subscriptions: [{ id: 's', paymentToken: 'tok_SECRET_card' }] }],
    ['the http section with its token list', { http: { port: 8080, tokens: [{ token: 'adm_SECRET_token', scope: 'read' }] } }],
    ['authorization headers of a request', { headers: { authorization: 'Bearer SECRET_bearer' }, req: { method: 'POST', headers: { authorization: 'Basic SECRET_basic' } } }],
    ['a token three levels down', { a: { b: { token: 'adm_SECRET_token' } } }],
    ['a whole config object', { config: { gateways: { coolpay: { apiKey: 'ak_SECRET_key' } }, webhooks: [{ secret: 'whsec_SECRET' }] } }],
    ['deep and capitalised headers', { request: { options: { headers: { Authorization: 'Bearer SECRET_bearer', 'X-Api': 'ok' } } } }],
  ];

  it.each(shapes)('redacts secrets in %s and keeps the other fields', (_name, object) => {
    const out = capture();
    const logger = createLogger({ destination: out });
    logger.info({ subscriptionId: 'sub-1', ...object }, 'something happened');
    const text = out.lines.join('');
    for (const secret of SECRETS) expect(text, `"${secret}" leaked`).not.toContain(secret);
    expect(text).toContain('[redacted]');
    const [record] = out.records();
    expect(record).toMatchObject({ subscriptionId: 'sub-1', msg: 'something happened', level: 30 });
  });

  it('keeps the shape of the object around a redacted value', () => {
    const out = capture();
    createLogger({ destination: out }).info({ subscription: { id: 'sub-1', paymentToken: 'tok_SECRET_card', amount: '9.99' } }, 'x');
    expect(out.records()[0]!.subscription).toEqual({ id: 'sub-1', paymentToken: '[redacted]', amount: '9.99' });
  });
});

describe('engine attempt logs', () => {
  let t: TempDb;
  beforeEach(async () => {
    t = await openTempDb();
  });
  afterEach(async () => {
    await t.close();
  });

  it('writes one line per attempt outcome with subscriptionId, cycle, attempt and outcome, and never the card token', async () => {
    const out = capture();
    const clock = new VirtualClock(ms('2025-01-01T00:00:00Z'));
    const engine = daemonEngine(t.db, clock, {}, { logger: createLogger({ destination: out, level: 'info' }) });
    const tokens = { ok: 'tok_ok', poor: 'tok_insufficient', stolen: 'tok_stolen', lost: 'tok_timeout', waiting: 'tok_pending' } as const;
    for (const [id, paymentToken] of Object.entries(tokens)) {
      await addSubscription(t.db, clock.now(), { id, paymentToken, startDate: '2025-01-15' });
    }
    // Drive the engine through every instant something is due, up to Jan 31 (before cycle 2).
    for (;;) {
      await engine.sweepUntilIdle();
      const next = await nextWorkAt(t.db);
      if (next === null || next > ms('2025-01-31T00:00:00Z')) break;
      clock.set(Math.max(next, clock.now() + 1));
    }

    const records = out.records();
    // One JSON object per line.
    expect(out.lines.join('').trimEnd().split('\n')).toHaveLength(records.length);
    const outcomes = records.filter((r) => 'outcome' in r);
    const by = (id: string) => outcomes.filter((r) => r.subscriptionId === id).map((r) => [r.cycle, r.attempt, r.outcome, r.state]);
    expect(by('ok')).toEqual([[1, 1, 'captured', 'captured']]);
    expect(by('poor')).toEqual([
      [1, 1, 'declined', 'rejected'],
      [1, 2, 'declined', 'rejected'],
      [1, 3, 'declined', 'rejected'],
    ]);
    expect(by('stolen')).toEqual([[1, 1, 'declined', 'rejected']]);
    // The lost answer, then the status query that settled it: two outcomes of the same attempt.
    expect(by('lost')).toEqual([
      [1, 1, 'unavailable', 'unknown'],
      [1, 1, 'captured', 'captured'],
    ]);
    expect(by('waiting')).toEqual([
      [1, 1, 'pending', 'pending'],
      [1, 1, 'captured', 'captured'],
    ]);
    expect(outcomes).toHaveLength(engine.stats().outcomesRecorded);
    for (const r of outcomes) {
      expect(r).toMatchObject({ level: 30, key: `${String(r.subscriptionId)}:${String(r.cycle)}:${String(r.attempt)}` });
      expect(r.msg).toBe(`attempt ${String(r.state)}`);
    }
    const text = out.lines.join('');
    for (const token of Object.values(tokens)) expect(text, `card token ${token} logged`).not.toContain(token);
  });
});
