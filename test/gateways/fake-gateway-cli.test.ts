/**
 * `rebill fake-gateway` as a real child process, the way e2e tests and demos
 * run it. Needs the compiled CLI (`npm run build`, which `npm test` runs first).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createCoolpayGateway, type FakeCapture } from '../../src/gateways/index.js';
import { bin, requireBuild, root, runCli } from '../support/cli.js';
import { collectRequest } from './helpers.js';

interface Running {
  readonly child: ChildProcess;
  readonly url: string;
  readonly exited: Promise<number | null>;
}

const children: ChildProcess[] = [];

async function startCli(args: string[]): Promise<Running> {
  const child = spawn(process.execPath, [bin, 'fake-gateway', ...args], { cwd: root, stdio: ['ignore', 'pipe', 'pipe'] });
  children.push(child);
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  let stderr = '';
  child.stderr!.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const url = await new Promise<string>((resolve, reject) => {
    let stdout = '';
    const timer = setTimeout(() => reject(new Error(`no ready line within 10 s; stderr: ${stderr}`)), 10_000);
    child.stdout!.on('data', (chunk: Buffer) => {
      stdout += chunk.toString();
      const ready = /^fake-gateway listening on (http:\/\/\S+)$/m.exec(stdout);
      if (ready) {
        clearTimeout(timer);
        resolve(ready[1]!);
      }
    });
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`fake-gateway exited with ${code} before it was ready; stderr: ${stderr}`));
    });
  });
  return { child, url, exited };
}

async function ledgerOf(url: string): Promise<FakeCapture[]> {
  return (await (await fetch(`${url}/__ledger`)).json()) as FakeCapture[];
}

describe('rebill fake-gateway (child process)', () => {
  let dir: string;

  beforeAll(requireBuild);

  afterEach(() => {
    for (const child of children.splice(0)) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });

  it('prints its real port, serves CoolPay, exits 0 on SIGTERM, and after a restart on the same ledger still lists and deduplicates captures', async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'rebill-fake-cli-'));
    const ledgerFile = path.join(dir, 'captures.jsonl');

    const first = await startCli(['--port', '0', '--ledger', ledgerFile]);
    expect(first.url).toMatch(/^http:\/\/127\.0\.0\.1:[1-9]\d*$/);
    const coolpay = (url: string) => createCoolpayGateway({ name: 'coolpay', baseUrl: url, apiKey: 'test-key', timeoutSeconds: 5 });
    const request = collectRequest('tok_ok', { subscriptionId: 'cli-1', amountMinor: 500, currency: 'JPY' });
    const captured = await coolpay(first.url).charge(request);
    expect(captured).toMatchObject({ kind: 'captured' });
    // tok_timeout: captured at the gateway although the answer is lost.
    const lost = collectRequest('tok_timeout', { subscriptionId: 'cli-2' });
    await expect(coolpay(first.url).charge(lost)).rejects.toThrow();
    const before = await ledgerOf(first.url);
    expect(before.map((c) => [c.order_id, c.amount, c.currency])).toEqual([
      ['cli-1:1:1', 500, 'JPY'],
      ['cli-2:1:1', 999, 'USD'],
    ]);
    first.child.kill('SIGTERM');
    expect(await first.exited).toBe(0);

    const second = await startCli(['--port', '0', '--ledger', ledgerFile]);
    expect(await ledgerOf(second.url)).toEqual(before);
    await expect(coolpay(second.url).charge(request)).resolves.toEqual(captured);
    await expect(coolpay(second.url).status(lost.idempotencyKey, lost)).resolves.toMatchObject({ kind: 'captured' });
    await expect(coolpay(second.url).charge(lost)).resolves.toMatchObject({ kind: 'captured' });
    expect(await ledgerOf(second.url)).toEqual(before);
    second.child.kill('SIGINT');
    expect(await second.exited).toBe(0);
  });

  it('answers 401 without Basic auth', async () => {
    const running = await startCli(['--port', '0']);
    const response = await fetch(`${running.url}/subscriptions/tok_ok/recurring`, { method: 'POST', body: '{}' });
    expect(response.status).toBe(401);
    running.child.kill('SIGTERM');
    expect(await running.exited).toBe(0);
  });

  it('--latency-ms holds every API answer that long (the bench latency-bound scenario), the test endpoints answer at once', async () => {
    const running = await startCli(['--port', '0', '--latency-ms', '150']);
    const coolpay = createCoolpayGateway({ name: 'coolpay', baseUrl: running.url, apiKey: 'test-key', timeoutSeconds: 5 });
    const from = performance.now();
    await expect(coolpay.charge(collectRequest('tok_ok', { subscriptionId: 'slow-1' }))).resolves.toMatchObject({ kind: 'captured' });
    // A lower bound only: the answer was held at least the latency (never early), whatever the machine's load.
    expect(performance.now() - from).toBeGreaterThanOrEqual(145);
    expect((await ledgerOf(running.url)).map((c) => c.order_id)).toEqual(['slow-1:1:1']);
    running.child.kill('SIGTERM');
    expect(await running.exited).toBe(0);
  });

  it('--help documents --callback-url, --callback-secret and --pending-settle-ms', async () => {
    const run = await runCli(['fake-gateway', '--help']);
    expect(run.code).toBe(0);
    expect(run.stdout).toMatch(/--callback-url <url>[\s\S]*QuickPay-Checksum-Sha256[\s\S]*\/v1\/gateway-callbacks\/coolpay/);
    expect(run.stdout).toMatch(/--callback-secret <secret>[\s\S]*callbackSecret/);
    expect(run.stdout).toContain('--pending-settle-ms <ms>');
    expect(run.stdout).toContain('--latency-ms <ms>');
  });

  it.each([
    [['--callback-url', 'not a url'], '--callback-url: expected an http(s) URL'],
    [['--callback-url', 'ftp://127.0.0.1/x'], '--callback-url: expected an http(s) URL'],
    [['--pending-settle-ms', '1.5'], '--pending-settle-ms: expected a whole number of milliseconds'],
    [['--latency-ms', '20ms'], '--latency-ms: expected a whole number of milliseconds'],
  ])('rejects %j with exit code 2', async (flags, message) => {
    const run = await runCli(['fake-gateway', '--port', '0', ...flags]);
    expect(run.code).toBe(2);
    expect(run.stderr).toContain(message);
  });

  it('rejects a bad --port with exit code 2', async () => {
    const child = spawn(process.execPath, [bin, 'fake-gateway', '--port', 'abc'], { cwd: root, stdio: 'ignore' });
    children.push(child);
    const code = await new Promise<number | null>((resolve) => child.once('exit', resolve));
    expect(code).toBe(2);
  });
});
