/**
 * docker-compose.yml read as compose reads it (YAML with merge keys): the
 * three services, their images, volumes and health checks; its rebill config
 * validated by `rebill check-config` with the variables compose passes; and
 * the webhook receiver it runs (deploy/webhook-receiver.mjs) started for real
 * and sent signed and forged Standard Webhooks deliveries.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { Webhook } from 'standardwebhooks';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { requireBuild, root, runCli, withoutRebillEnv } from '../support/cli.js';
import { fileTempDir } from '../support/temp.js';
import { healthcheck } from './dockerfile.js';

interface Service {
  build?: unknown;
  image?: string;
  command?: string[] | string;
  environment?: Record<string, string>;
  volumes?: string[];
  ports?: string[];
  healthcheck?: { test?: string[]; disable?: boolean; timeout?: string };
  depends_on?: Record<string, unknown>;
  stop_grace_period?: string;
}

const compose = parse(readFileSync(path.join(root, 'docker-compose.yml'), 'utf8'), { merge: true }) as {
  services: Record<string, Service>;
  volumes: Record<string, unknown>;
};
const { rebill, 'fake-gateway': gateway, 'webhook-receiver': receiver } = compose.services;
const dir = fileTempDir('compose');

/** `${NAME:-default}` of a compose value: the default compose would use. */
function composeDefault(value: string | undefined): string | undefined {
  return /^\$\{[A-Z_]+:-(.*)\}$/.exec(value ?? '')?.[1];
}

describe('docker-compose.yml', () => {
  beforeAll(requireBuild);

  it('runs rebill, the fake gateway and a webhook receiver, all from the one image built from the Dockerfile', () => {
    expect(Object.keys(compose.services).sort()).toEqual(['fake-gateway', 'rebill', 'webhook-receiver']);
    for (const s of [rebill, gateway, receiver]) {
      expect(s!.build).toBe('.');
      expect(s!.image).toBe('rebill:local');
    }
  });

  it('mounts the compose config at the image\'s config path, keeps /data in a named volume and requires the admin token', () => {
    expect(rebill!.volumes).toContain('./deploy/compose/rebill.yaml:/etc/rebill/rebill.yaml:ro');
    const data = rebill!.volumes!.find((v) => v.endsWith(':/data'))!;
    expect(Object.keys(compose.volumes)).toContain(data.split(':')[0]);
    // `:?` makes compose refuse to start without it; the image refuses the well-known fallback anyway.
    expect(rebill!.environment!.REBILL_ADMIN_TOKEN).toMatch(/^\$\{REBILL_ADMIN_TOKEN:\?/);
    expect(rebill!.ports).toEqual(['127.0.0.1:8080:8080']);
    expect(rebill!.depends_on).toHaveProperty('fake-gateway');
  });

  it("checks rebill's health with the image's own HEALTHCHECK command, and waits out the drain on stop", () => {
    expect(rebill!.healthcheck!.test).toEqual(['CMD', ...healthcheck().argv]);
    expect(Number.parseInt(rebill!.stop_grace_period!, 10)).toBeGreaterThan(30);
  });

  it('runs the fake gateway from the image with its ledger in a volume, calling back into rebill', () => {
    const argv = gateway!.command as string[];
    expect(argv.slice(0, 3)).toEqual(['node', 'bin/rebill.js', 'fake-gateway']);
    expect(argv[argv.indexOf('--host') + 1]).toBe('0.0.0.0');
    expect(argv[argv.indexOf('--port') + 1]).toBe('8081');
    const ledger = argv[argv.indexOf('--ledger') + 1]!;
    const mount = gateway!.volumes!.find((v) => ledger.startsWith(`${v.split(':')[1]}/`));
    expect(mount && Object.keys(compose.volumes)).toContain(mount!.split(':')[0]);
    expect(argv[argv.indexOf('--callback-url') + 1]).toBe('http://rebill:8080/v1/gateway-callbacks/coolpay');
    expect(gateway!.healthcheck).toEqual({ disable: true });
  });

  it('runs the webhook receiver from the repository with the secret rebill signs with', () => {
    expect(receiver!.command).toEqual(['node', 'deploy/webhook-receiver.mjs']);
    expect(receiver!.environment!.WEBHOOK_SECRET).toBe(rebill!.environment!.WEBHOOK_SECRET);
    expect(receiver!.healthcheck!.test![0]).toBe('CMD');
  });

  it("its rebill config passes `rebill check-config` with the variables compose passes", async () => {
    const env: Record<string, string> = { REBILL_ADMIN_TOKEN: 'compose-test-admin-token-0123456789', REBILL_DATABASE_URL: `sqlite:${path.join(dir, 'rebill.db')}` };
    for (const [name, value] of Object.entries(rebill!.environment!)) if (composeDefault(value) !== undefined) env[name] = composeDefault(value)!;
    const run = await runCli(['check-config', '--config', 'deploy/compose/rebill.yaml'], { cleanRebillEnv: true, env });
    expect(run.stderr).toBe('');
    expect(run.stdout).toMatch(/^config OK: 1 plans, 1 gateways/);
    expect(run.code).toBe(0);
    const config = parse(readFileSync(path.join(root, 'deploy/compose/rebill.yaml'), 'utf8')) as {
      database: { url: string };
      gateways: Record<string, { type: string; baseUrl: string }>;
      webhooks: Array<{ url: string }>;
    };
    expect(config.database.url).toBe('sqlite:/data/rebill.db');
    expect(config.gateways.coolpay).toMatchObject({ type: 'coolpay', baseUrl: 'http://fake-gateway:8081' });
    expect(config.webhooks.map((w) => w.url)).toEqual(['http://webhook-receiver:8090/rebill']);
  });
});

describe('docker-compose.postgres.yml (scaling out)', () => {
  const scaled = parse(readFileSync(path.join(root, 'docker-compose.postgres.yml'), 'utf8'), { merge: true }) as { services: Record<string, Service & { depends_on?: Record<string, { condition: string }> }> };

  it('runs two rebill daemons from the image on one PostgreSQL service, each waiting for it to be healthy', () => {
    const daemons = Object.entries(scaled.services).filter(([name]) => name.startsWith('rebill-'));
    expect(daemons.map(([name]) => name)).toEqual(['rebill-1', 'rebill-2']);
    for (const [, daemon] of daemons) {
      expect(daemon.image).toBe('rebill:local');
      expect(daemon.volumes).toEqual(['./deploy/compose/rebill-postgres.yaml:/etc/rebill/rebill.yaml:ro']);
      expect(daemon.depends_on?.postgres).toEqual({ condition: 'service_healthy' });
      expect(daemon.stop_grace_period).toBe('40s');
      expect(daemon.healthcheck!.test).toEqual(rebill!.healthcheck!.test);
    }
    expect(scaled.services.postgres!.image).toMatch(/^postgres:15/);
    expect(scaled.services.postgres!.healthcheck!.test).toContain('pg_isready');
  });

  it('its rebill config passes `rebill check-config` with the variables compose passes (the server is not reachable from here: a warning, exit 0)', async () => {
    const env: Record<string, string> = { REBILL_ADMIN_TOKEN: 'compose-test-admin-token-0123456789', POSTGRES_PASSWORD: 'compose-test-pg-password' };
    for (const [name, value] of Object.entries(scaled.services['rebill-1']!.environment!)) if (composeDefault(value) !== undefined) env[name] = composeDefault(value)!;
    const run = await runCli(['check-config', '--config', 'deploy/compose/rebill-postgres.yaml'], { cleanRebillEnv: true, env });
    expect(run.stdout).toMatch(/^config OK: 1 plans, 1 gateways/);
    expect(run.stderr).toMatch(/warning: database postgres:\/\/rebill:\[redacted\]@postgres:5432\/rebill not reachable/);
    expect(run.stderr).not.toContain('compose-test-pg-password');
    expect(run.code).toBe(0);
  });
});

describe('deploy/webhook-receiver.mjs', () => {
  const secret = 'whsec_' + Buffer.from('receiver-test-secret').toString('base64');
  let child: ChildProcess;
  let url: string;
  let output = '';

  beforeAll(async () => {
    child = spawn(process.execPath, ['deploy/webhook-receiver.mjs'], {
      cwd: root,
      env: { ...withoutRebillEnv(), NODE_OPTIONS: '', WEBHOOK_SECRET: secret, HOST: '127.0.0.1', PORT: '0' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    child.stdout!.on('data', (c: Buffer) => (output += c.toString()));
    child.stderr!.on('data', (c: Buffer) => (output += c.toString()));
    url = await new Promise<string>((resolve, reject) => {
      const poll = setInterval(() => {
        const m = /"url":"(http:\/\/127\.0\.0\.1:\d+)"/.exec(output);
        if (m) done(() => resolve(m[1]!));
        else if (child.exitCode !== null) done(() => reject(new Error(`receiver exited ${child.exitCode}: ${output}`)));
      }, 20);
      const done = (settle: () => void) => {
        clearInterval(poll);
        settle();
      };
    });
  });
  afterAll(() => child?.kill('SIGKILL'));

  /** The receiver's log line matching `re`: it logs after answering, and its stdout pipe may deliver the line after the response. */
  async function logged(re: RegExp): Promise<string> {
    const deadline = Date.now() + 10_000;
    while (!re.test(output) && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 20));
    return output;
  }

  function post(body: string, headers: Record<string, string>): Promise<Response> {
    return fetch(`${url}/rebill`, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body });
  }

  it('accepts a delivery signed with the secret (204) and logs it', async () => {
    const body = JSON.stringify({ id: 'evt_1', type: 'charge.succeeded', data: {} });
    const now = new Date();
    const signature = new Webhook(secret).sign('msg_1', now, body);
    const res = await post(body, { 'webhook-id': 'msg_1', 'webhook-timestamp': String(Math.floor(now.getTime() / 1000)), 'webhook-signature': signature });
    expect(res.status).toBe(204);
    expect(await logged(/"msg":"delivery","verified":true/)).toMatch(/"msg":"delivery","verified":true,"webhookId":"msg_1","type":"charge.succeeded"/);
  });

  it('rejects a forged or unsigned delivery (401), logs why, and never logs the secret', async () => {
    const body = JSON.stringify({ id: 'evt_2', type: 'charge.succeeded' });
    const now = new Date();
    const forged = new Webhook('whsec_' + Buffer.from('another-secret').toString('base64')).sign('msg_2', now, body);
    expect((await post(body, { 'webhook-id': 'msg_2', 'webhook-timestamp': String(Math.floor(now.getTime() / 1000)), 'webhook-signature': forged })).status).toBe(401);
    expect((await post(body, {})).status).toBe(401);
    expect(await logged(/"msg":"delivery rejected","verified":false,"webhookId":"msg_2"/)).toMatch(/"msg":"delivery rejected","verified":false,"webhookId":"msg_2"/);
    expect(output).not.toContain(secret);
    expect(output).not.toContain(secret.slice('whsec_'.length));
  });
});
