/**
 * Command output on stdout, which may be a pipe its reader closes early
 * (`rebill preview ... | head -2`). Writing to a closed pipe fails with EPIPE,
 * emitted as an 'error' event that would otherwise crash the process with a
 * stack trace; a reader that has seen enough is not an error, so the command
 * stops writing and exits quietly with its normal exit code.
 */
import type { Writable } from 'node:stream';

/** Lines to a stream that may be closed by its reader. */
export interface LineOutput {
  /** Writes one line (a newline is added); waits while the stream's buffer is full; dropped once closed. */
  line(text: string): Promise<void>;
  /** True once the reader has gone: nothing more will be read, so work producing output can stop. */
  readonly closed: boolean;
}

/** Wraps `stream` (stdout by default) so that EPIPE closes the output instead of crashing. */
export function lineOutput(stream: Writable = process.stdout): LineOutput {
  let closed = false;
  const onError = (err: NodeJS.ErrnoException) => {
    // After the first EPIPE the stream is destroyed, and writes already queued report that too.
    if (err.code === 'EPIPE' || (closed && err.code === 'ERR_STREAM_DESTROYED')) {
      closed = true;
      return;
    }
    // Anything else (a full disk behind a redirect) is a real failure: surface it as before.
    stream.off('error', onError);
    stream.emit('error', err);
  };
  stream.on('error', onError);
  return {
    get closed() {
      return closed;
    },
    async line(text: string): Promise<void> {
      if (closed) return;
      if (!stream.write(`${text}\n`)) {
        await new Promise<void>((resolve) => {
          const done = () => {
            stream.off('drain', done);
            stream.off('error', done);
            stream.off('close', done);
            resolve();
          };
          stream.on('drain', done).on('error', done).on('close', done);
        });
      }
    },
  };
}
