/**
 * The config files the bench gives `rebill run` and the other commands: one
 * plan (`bench`, 9.99 USD monthly at 00:00 UTC), SQLite at synchronous=FULL
 * in the scenario's directory, HTTP on loopback, and whatever the scenario
 * changes (gateway, scheduler, webhooks, seeds).
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';

/** The admin token of every bench daemon (loopback only). */
export const BENCH_TOKEN = 'bench-admin-token';

/** The one plan of every bench config. */
export const BENCH_PLAN = 'bench';

export type BenchGateway = { readonly type: 'simulator' } | { readonly type: 'coolpay'; readonly baseUrl: string; readonly timeoutSeconds?: number };

export interface BenchConfigOptions {
  readonly dir: string;
  /** Default `sqlite:<dir>/rebill.db` at synchronous=FULL (a PostgreSQL scenario passes its postgres:// URL). */
  readonly databaseUrl?: string;
  /** Default `sim: { type: simulator }`, as `config/rebill.yaml` configures it. */
  readonly gateway?: BenchGateway;
  /**
   * Scheduler settings; the default is the config schema's, except the rate
   * limit, which is lifted (50/s would be what a bench measures otherwise).
   */
  readonly scheduler?: { readonly concurrency?: number; readonly ratePerSecond?: number; readonly claimBatch?: number };
  /** Default 0 (any free port): scenarios that talk to the daemon pass a port from freePort(). */
  readonly httpPort?: number;
  readonly webhooks?: ReadonlyArray<{ readonly url: string; readonly secret: string }>;
  /** Default `warn`: a quiet daemon, as an operator would run a busy one (no line per attempt). */
  readonly logLevel?: 'warn' | 'info';
  /** YAML flow mappings of `subscriptions:` seeds, one a line. */
  readonly seeds?: Iterable<string>;
}

/** The gateway name every bench plan uses. */
export function gatewayName(gateway: BenchGateway | undefined): string {
  return gateway?.type === 'coolpay' ? 'cp' : 'sim';
}

/** Writes `<dir>/rebill.yaml` and returns its path; the database is `<dir>/rebill.db`. */
export function writeBenchConfig(options: BenchConfigOptions): string {
  const gateway = options.gateway ?? { type: 'simulator' };
  const name = gatewayName(gateway);
  const scheduler = { ratePerSecond: 1_000_000, ...options.scheduler };
  const lines = [
    options.databaseUrl ? `database: { url: "${options.databaseUrl}" }` : `database: { url: "sqlite:${join(options.dir, 'rebill.db')}", synchronous: full }`,
    `http: { host: 127.0.0.1, port: ${options.httpPort ?? 0}, tokens: [{ token: ${BENCH_TOKEN}, scope: write }] }`,
    // The cron sweep once a year: the engine's own timer and kicks drive everything measured here.
    `scheduler: { sweep: "0 0 1 1 *", ${Object.entries(scheduler)
      .map(([k, v]) => `${k}: ${v}`)
      .join(', ')} }`,
    `logging: { level: ${options.logLevel ?? 'warn'} }`,
    'gateways:',
    gateway.type === 'simulator'
      ? `  ${name}: { type: simulator }`
      : `  ${name}: { type: coolpay, baseUrl: "${gateway.baseUrl}", apiKey: bench-key, timeoutSeconds: ${gateway.timeoutSeconds ?? 10} }`,
    'plans:',
    `  - { id: ${BENCH_PLAN}, amount: "9.99", currency: USD, every: MONTH, sendOnHour: 0, timezone: UTC, gateway: ${name} }`,
  ];
  if (options.webhooks?.length) {
    lines.push('webhooks:');
    for (const w of options.webhooks) lines.push(`  - { url: "${w.url}", secret: "${w.secret}", events: ["*"] }`);
  }
  const file = join(options.dir, 'rebill.yaml');
  writeFileSync(file, `${lines.join('\n')}\n`);
  if (options.seeds) {
    // Appended in chunks: 100,000 seeds are 13 MB of YAML.
    let chunk = 'subscriptions:\n';
    for (const seed of options.seeds) {
      chunk += `  - ${seed}\n`;
      if (chunk.length > 1 << 20) {
        writeFileSync(file, chunk, { flag: 'a' });
        chunk = '';
      }
    }
    writeFileSync(file, chunk, { flag: 'a' });
  }
  return file;
}
