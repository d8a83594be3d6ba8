/**
 * Issue 8, item 7: a listener reachable from the network with no admin token,
 * or with a token everyone knows, is refused by config validation, so
 * `check-config` and `run` both exit 78 at the same file:line (real processes
 * below), and the message says how to fix it without ever echoing a token.
 */
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ConfigError, isLoopbackHost, KNOWN_ADMIN_TOKENS, parseConfig } from '../../src/config/index.js';
import { requireBuild, root, runCli } from '../support/cli.js';
import { fileTempDir } from '../support/temp.js';

const BASE = ['gateways: { sim: { type: simulator } }', 'plans:', '  - { id: p, amount: "1", currency: USD, every: MONTH }'];
const yaml = (...lines: string[]) => [...lines, ...BASE, ''].join('\n');

function problems(text: string, env: Record<string, string> = {}): string[] {
  try {
    parseConfig(text, 'h.yaml', env);
    return [];
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    return err.problems.map((p) => `${p.file}:${p.line}:${p.column}: ${p.path}: ${p.message}`);
  }
}

const HOW = /set REBILL_ADMIN_TOKEN to a secret .* or bind loopback only \(http\.host: 127\.0\.0\.1, or REBILL_HTTP_HOST=127\.0\.0\.1\)$/;

describe('http exposure (config validation)', () => {
  it('refuses a chosen non-loopback host with no token, at the host line, saying how to fix it', () => {
    const found = problems(yaml('http:', '  host: 0.0.0.0'));
    expect(found).toHaveLength(1);
    expect(found[0]).toMatch(/^h\.yaml:2:9: http\.host: http\.host is 0\.0\.0\.0, reachable from the network, but no admin token is configured: /);
    expect(found[0]).toMatch(HOW);
  });

  it('refuses a token everyone knows on a non-loopback host, at the token, without echoing it', () => {
    const found = problems(yaml('http:', '  host: 10.1.2.3', '  tokens:', `    - { token: "${KNOWN_ADMIN_TOKENS[0]}", scope: write }`, '    - { token: "s3cret-operator-token", scope: read }'));
    expect(found).toHaveLength(1);
    expect(found[0]).toMatch(/^h\.yaml:4:16: http\.tokens\[0\]\.token: is a token everyone knows \(the example config's fallback\) while http\.host is 10\.1\.2\.3/);
    expect(found.join('\n')).not.toMatch(/dev-admin-token|s3cret/);
  });

  it('refuses REBILL_HTTP_HOST=0.0.0.0 on the shipped config while REBILL_ADMIN_TOKEN is unset (the Docker image without a token)', () => {
    const shipped = readFileSync(join(root, 'config/rebill.yaml'), 'utf8');
    expect(problems(shipped, {})).toEqual([]); // loopback out of the box: npm start works
    const found = problems(shipped, { REBILL_HTTP_HOST: '0.0.0.0' });
    expect(found).toHaveLength(1);
    expect(found[0]).toMatch(/: http\.tokens\[0\]\.token: is a token everyone knows/);
    expect(problems(shipped, { REBILL_HTTP_HOST: '0.0.0.0', REBILL_ADMIN_TOKEN: 'f4c1d0e2a9b8' })).toEqual([]);
  });

  it('accepts loopback hosts with any tokens, a network host with a secret token, and no http section (0.0.0.0:8080 with the admin API closed)', () => {
    for (const host of ['127.0.0.1', 'localhost', '::1', '[::1]', '127.8.9.1']) {
      expect(problems(yaml('http:', `  host: "${host}"`)), host).toEqual([]);
      expect(problems(yaml('http:', `  host: "${host}"`, '  tokens: [{ token: dev-admin-token, scope: write }]')), host).toEqual([]);
    }
    expect(problems(yaml('http: { host: 0.0.0.0, tokens: [{ token: "9f8e7d6c5b4a", scope: write }] }'))).toEqual([]);
    const config = parseConfig(yaml(), 'h.yaml', {});
    expect(config.http).toEqual({ host: '0.0.0.0', port: 8080, tokens: [] });
  });

  it('isLoopbackHost', () => {
    expect(['127.0.0.1', '127.255.0.9', 'localhost', 'LOCALHOST', 'api.localhost', '::1', '[::1]', '0:0:0:0:0:0:0:1', '::ffff:127.0.0.1'].every(isLoopbackHost)).toBe(true);
    expect(['0.0.0.0', '::', '10.0.0.1', '192.168.1.1', 'example.com', '128.0.0.1', '::2'].some(isLoopbackHost)).toBe(false);
  });
});

describe('check-config and run refuse the same exposure (real processes)', () => {
  const tmp = fileTempDir('exposure');

  it('exit 78 from both with the same file:line message; nothing started', async () => {
    requireBuild();
    const dir = join(tmp, 'open');
    mkdirSync(dir);
    const file = join(dir, 'rebill.yaml');
    writeFileSync(file, yaml(`database: { url: "sqlite:${join(dir, 'rebill.db')}" }`, 'http: { host: 0.0.0.0, port: 0, tokens: [{ token: "${REBILL_ADMIN_TOKEN:-dev-admin-token}", scope: write }] }'));
    const runs = [];
    for (const command of ['check-config', 'run']) runs.push(await runCli([command, '--config', file], { cleanRebillEnv: true }));
    for (const run of runs) {
      expect(run.code).toBe(78);
      expect(run.stderr).toMatch(new RegExp(`^${file.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}:2:\\d+: http\\.tokens\\[0\\]\\.token: is a token everyone knows`));
      expect(run.stderr).not.toMatch(/dev-admin-token/);
      expect(run.stdout).not.toMatch(/rebill ready/);
    }
    expect(runs[0]!.stderr).toBe(runs[1]!.stderr);
  }, 60_000);
});
