import type { Command } from 'commander';
import { startFakeGateway } from '../gateways/index.js';
import { UsageError, type CommandContext } from './index.js';

interface FakeGatewayFlags {
  port: string;
  host: string;
  ledger?: string;
  callbackUrl?: string;
  callbackSecret?: string;
  pendingSettleMs: string;
  latencyMs: string;
}

/**
 * `rebill fake-gateway`: run the CoolPay-compatible fake until SIGTERM/SIGINT
 * (SPEC sections 7 and 10). The ready line on stdout carries the real port,
 * so `--port 0` works for tests that wait for it.
 */
export function registerFakeGateway(program: Command, ctx: CommandContext): void {
  program
    .command('fake-gateway')
    .description('run a CoolPay-compatible fake gateway that understands the simulator tokens')
    .requiredOption('--port <port>', 'TCP port; 0 picks a free one')
    .option('--host <host>', 'address to listen on', '127.0.0.1')
    .option('--ledger <file>', 'JSON-lines file of every payment, link and capture, kept across restarts')
    .option(
      '--callback-url <url>',
      'POST a CoolPay/QuickPay-style callback (the payment or agreement, signed with QuickPay-Checksum-Sha256) to this URL when a pending payment settles or a payment link is paid, e.g. http://127.0.0.1:8080/v1/gateway-callbacks/coolpay; retried a few times on failure',
    )
    .option('--callback-secret <secret>', "key the callbacks are signed with (rebill's gateways.<name>.callbackSecret); default: the API key the payment was made with")
    .option('--pending-settle-ms <ms>', 'with --callback-url: a tok_pending payment settles by itself after this long', '500')
    .option('--latency-ms <ms>', 'answer every API request this many milliseconds after it arrived, as a real gateway over a network would (load tests)', '0')
    .action(async (flags: FakeGatewayFlags) => {
      const port = Number(flags.port);
      if (!/^\d+$/.test(flags.port) || port > 65_535) throw new UsageError(`--port: expected 0..65535; got "${flags.port}"`);
      if (flags.callbackUrl !== undefined && !isHttpUrl(flags.callbackUrl)) throw new UsageError('--callback-url: expected an http(s) URL');
      if (flags.callbackSecret === '') throw new UsageError('--callback-secret: must not be empty');
      const pendingSettleMs = Number(flags.pendingSettleMs);
      if (!/^\d{1,9}$/.test(flags.pendingSettleMs)) throw new UsageError(`--pending-settle-ms: expected a whole number of milliseconds; got "${flags.pendingSettleMs}"`);
      const latencyMs = Number(flags.latencyMs);
      if (!/^\d{1,6}$/.test(flags.latencyMs)) throw new UsageError(`--latency-ms: expected a whole number of milliseconds; got "${flags.latencyMs}"`);
      let gateway;
      try {
        gateway = await startFakeGateway({
          host: flags.host,
          port,
          pendingSettleMs,
          latencyMs,
          ...(flags.ledger !== undefined ? { ledgerFile: flags.ledger } : {}),
          ...(flags.callbackUrl !== undefined ? { callbackUrl: flags.callbackUrl } : {}),
          ...(flags.callbackSecret !== undefined ? { callbackSecret: flags.callbackSecret } : {}),
        });
      } catch (err) {
        process.stderr.write(`fake-gateway: cannot start: ${err instanceof Error ? err.message : String(err)}\n`);
        ctx.exitCode = 1;
        return;
      }
      process.stdout.write(`fake-gateway listening on ${gateway.url}\n`);
      const signal = await new Promise<NodeJS.Signals>((resolve) => {
        const stop = (s: NodeJS.Signals) => {
          process.off('SIGTERM', stop);
          process.off('SIGINT', stop);
          resolve(s);
        };
        process.on('SIGTERM', stop);
        process.on('SIGINT', stop);
      });
      await gateway.close();
      process.stderr.write(`fake-gateway: stopped on ${signal}\n`);
      ctx.exitCode = 0;
    });
}

function isHttpUrl(text: string): boolean {
  try {
    const url = new URL(text);
    return url.protocol === 'http:' || url.protocol === 'https:';
  } catch {
    return false;
  }
}
