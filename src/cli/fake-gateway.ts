import type { Command } from 'commander';
import { startFakeGateway } from '../gateways/index.js';
import { UsageError, type CommandContext } from './index.js';

interface FakeGatewayFlags {
  port: string;
  host: string;
  ledger?: string;
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
    .action(async (flags: FakeGatewayFlags) => {
      const port = Number(flags.port);
      if (!/^\d+$/.test(flags.port) || port > 65_535) throw new UsageError(`--port: expected 0..65535; got "${flags.port}"`);
      let gateway;
      try {
        gateway = await startFakeGateway({ host: flags.host, port, ...(flags.ledger !== undefined ? { ledgerFile: flags.ledger } : {}) });
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
