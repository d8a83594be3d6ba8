#!/usr/bin/env node
/**
 * A local SMTP catcher for trying payment-link e-mails (README "Payment-link
 * e-mails"): accepts every message on 127.0.0.1 (no TLS, any or no login)
 * and prints it, headers and body, to stdout. Nothing is delivered anywhere.
 * It uses the smtp-server package, a dev dependency (`npm ci` installs it).
 *
 *   [PORT=2525] node deploy/smtp-catcher.mjs
 *
 * Then point rebill at it: notifications.email.smtp: "smtp://127.0.0.1:2525".
 */
import { SMTPServer } from 'smtp-server';

const port = Number(process.env.PORT ?? 2525);
const server = new SMTPServer({
  logger: false,
  disabledCommands: ['STARTTLS'], // plain text on loopback: no certificate to trust
  authOptional: true,
  allowInsecureAuth: true,
  onAuth: (auth, _session, callback) => callback(null, { user: auth.username }),
  onData(stream, session, callback) {
    let raw = '';
    stream.setEncoding('utf8');
    stream.on('data', (chunk) => (raw += chunk));
    stream.on('end', () => {
      const to = session.envelope.rcptTo.map((r) => r.address).join(', ');
      process.stdout.write(`----- message for ${to} (${new Date().toISOString()})\n${raw.replace(/\r\n/g, '\n')}\n`);
      callback(null, 'caught');
    });
  },
});
server.listen(port, '127.0.0.1', () => process.stdout.write(`smtp-catcher listening on 127.0.0.1:${server.server.address().port}\n`));
for (const signal of ['SIGINT', 'SIGTERM']) process.once(signal, () => server.close(() => process.exit(0)));
