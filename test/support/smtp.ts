/**
 * A real SMTP server on 127.0.0.1 for the link e-mail tests (the smtp-server
 * package): it keeps every message it accepted, can be told to refuse with a
 * 4xx or 5xx reply, and can require AUTH. STARTTLS is off, as on a local mail
 * catcher (its built-in certificate would fail the client's verification).
 */
import { createServer as createNetServer } from 'node:net';
import { SMTPServer } from 'smtp-server';

export interface ReceivedMail {
  /** The envelope: MAIL FROM and RCPT TO. */
  readonly mailFrom: string;
  readonly rcptTo: readonly string[];
  /** The user that authenticated, if any. */
  readonly user: string | undefined;
  /** Header names lower-cased, folded lines joined. */
  readonly headers: ReadonlyMap<string, string>;
  /** The body, quoted-printable or base64 decoded. */
  readonly text: string;
}

/** `accept`, or the reply code to refuse each message's data with. */
export type SmtpAnswer = 'accept' | 421 | 451 | 550 | 554;

export interface SmtpCatcher {
  readonly port: number;
  readonly received: ReceivedMail[];
  /** Messages refused so far (answer was a code). */
  readonly refused: number;
  answer: SmtpAnswer;
  /** true: a message's data is read, then the reply waits until release() (a conversation in flight). */
  hold: boolean;
  /** Messages whose reply is being held. */
  readonly held: number;
  /** Sends the held replies. */
  release(): void;
  /** Resolves once `count` messages were accepted. */
  waitFor(count: number, timeoutMs?: number): Promise<ReceivedMail[]>;
  close(): Promise<void>;
}

/** A port nothing listens on right now (a server bound on 0, then closed): "SMTP down" until a catcher takes it. */
export async function freePort(): Promise<number> {
  const server = createNetServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as { port: number }).port;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

/** Decodes a quoted-printable body (soft line breaks and =XX escapes). */
function decodeQuotedPrintable(body: string): string {
  const bytes = body.replace(/=\r?\n/g, '').replace(/=([0-9A-F]{2})/gi, (_, hex: string) => String.fromCharCode(parseInt(hex, 16)));
  return Buffer.from(bytes, 'latin1').toString('utf8');
}

/** Splits a raw RFC 5322 message into unfolded headers and a decoded single-part body. */
export function parseMail(raw: string): { headers: Map<string, string>; text: string } {
  const split = raw.indexOf('\r\n\r\n');
  const head = raw.slice(0, split).replace(/\r\n[ \t]+/g, ' ');
  const body = raw.slice(split + 4);
  const headers = new Map<string, string>();
  for (const line of head.split('\r\n')) {
    const colon = line.indexOf(':');
    if (colon > 0) headers.set(line.slice(0, colon).trim().toLowerCase(), line.slice(colon + 1).trim());
  }
  const encoding = (headers.get('content-transfer-encoding') ?? '7bit').toLowerCase();
  const text = encoding === 'quoted-printable' ? decodeQuotedPrintable(body) : encoding === 'base64' ? Buffer.from(body, 'base64').toString('utf8') : body;
  return { headers, text: text.replace(/\r\n/g, '\n') };
}

/** Starts a catcher on `port` (0: a free one), requiring AUTH when `auth` is given. */
export async function startSmtpCatcher(options: { port?: number; auth?: { user: string; pass: string }; answer?: SmtpAnswer } = {}): Promise<SmtpCatcher> {
  const received: ReceivedMail[] = [];
  const waiters = new Set<() => void>();
  let refused = 0;
  let heldReplies: Array<() => void> = [];
  const catcher = {
    port: 0,
    received,
    get refused() {
      return refused;
    },
    get held() {
      return heldReplies.length;
    },
    answer: options.answer ?? ('accept' as SmtpAnswer),
    hold: false,
    release() {
      const replies = heldReplies;
      heldReplies = [];
      for (const reply of replies) reply();
    },
  };
  const server = new SMTPServer({
    logger: false,
    disabledCommands: ['STARTTLS'],
    authOptional: options.auth === undefined,
    allowInsecureAuth: true,
    onAuth(auth, _session, callback) {
      if (options.auth && auth.username === options.auth.user && auth.password === options.auth.pass) return callback(null, { user: auth.username });
      return callback(Object.assign(new Error('Invalid username or password'), { responseCode: 535 }));
    },
    onData(stream, session, callback) {
      const chunks: Buffer[] = [];
      stream.on('data', (c: Buffer) => chunks.push(c));
      stream.on('end', () => {
        if (catcher.hold) {
          heldReplies.push(() => reply());
          return;
        }
        reply();
      });
      const reply = () => {
        const answer = catcher.answer;
        if (answer !== 'accept') {
          refused++;
          const text = answer < 500 ? 'Try again later' : 'Rejected';
          return callback(Object.assign(new Error(`${text} (test catcher)`), { responseCode: answer }));
        }
        const { headers, text } = parseMail(Buffer.concat(chunks).toString('utf8'));
        const envelope = session.envelope;
        received.push({
          mailFrom: envelope.mailFrom === false ? '' : envelope.mailFrom.address,
          rcptTo: envelope.rcptTo.map((r) => r.address),
          user: typeof session.user === 'string' ? session.user : undefined,
          headers,
          text,
        });
        for (const wake of waiters) wake();
        callback(null, 'Message queued as test-' + received.length);
      };
    },
  });
  await new Promise<void>((resolve, reject) => {
    server.server.once('error', reject);
    server.listen(options.port ?? 0, '127.0.0.1', () => resolve());
  });
  catcher.port = (server.server.address() as { port: number }).port;
  return Object.assign(catcher, {
    waitFor(count: number, timeoutMs = 20_000) {
      return new Promise<ReceivedMail[]>((resolve, reject) => {
        const check = () => {
          if (received.length < count) return;
          clearTimeout(timer);
          waiters.delete(check);
          resolve(received);
        };
        const timer = setTimeout(() => {
          waiters.delete(check);
          reject(new Error(`${received.length} of ${count} e-mails arrived within ${timeoutMs} ms (${refused} refused)`));
        }, timeoutMs);
        waiters.add(check);
        check();
      });
    },
    close() {
      return new Promise<void>((resolve) => server.close(() => resolve()));
    },
  });
}
