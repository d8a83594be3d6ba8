/**
 * An append-only JSON-lines file that is durable line by line: the simulator
 * ledger and the fake gateway's capture ledger both use it to remember what
 * they charged across a crash or restart.
 */
import fs from 'node:fs';
import path from 'node:path';

/** An open JSON-lines file: the records found at open time, and a durable append. */
export interface JsonLinesFile {
  /** Records present when the file was opened, in file order. */
  readonly records: readonly unknown[];
  /** Appends one record and fsyncs before returning: once this returns, the line survives a crash. */
  append(record: unknown): void;
  close(): void;
}

/**
 * Opens (creating if needed) a JSON-lines file.
 *
 * A crash during an append can leave a last line without its newline, cut
 * anywhere. That record was never acknowledged (append fsyncs before it
 * returns), so it is dropped and the file is cut back to the last complete
 * line; otherwise the next append would be glued to the fragment. A bad line
 * anywhere else is corruption, not a torn write, and is refused loudly.
 */
export function openJsonLines(file: string): JsonLinesFile {
  const existed = fs.existsSync(file);
  if (!existed) fs.mkdirSync(path.dirname(file), { recursive: true });
  const fd = fs.openSync(file, 'a+');
  let closed = false;
  try {
    const text = fs.readFileSync(fd, 'utf8');
    const completeLength = text.endsWith('\n') || text === '' ? text.length : text.lastIndexOf('\n') + 1;
    const records: unknown[] = [];
    const lines = text.slice(0, completeLength).split('\n');
    lines.forEach((line, i) => {
      if (line.trim() === '') return;
      try {
        records.push(JSON.parse(line));
      } catch (cause) {
        throw new Error(`${file}:${i + 1}: not a JSON line (the file is damaged)`, { cause });
      }
    });
    if (completeLength < text.length) {
      // Torn tail from a crash: cut it off durably before anything is appended.
      fs.ftruncateSync(fd, Buffer.byteLength(text.slice(0, completeLength), 'utf8'));
      fs.fsyncSync(fd);
    }
    if (!existed) fsyncDirectory(path.dirname(file));
    return {
      records,
      append(record) {
        if (closed) throw new Error(`${file}: ledger is closed`);
        fs.appendFileSync(fd, `${JSON.stringify(record)}\n`);
        fs.fsyncSync(fd);
      },
      close() {
        if (closed) return;
        closed = true;
        fs.closeSync(fd);
      },
    };
  } catch (err) {
    fs.closeSync(fd);
    throw err;
  }
}

/** Makes a newly created file's directory entry durable (a no-op where directories cannot be opened). */
function fsyncDirectory(dir: string): void {
  let fd: number | undefined;
  try {
    fd = fs.openSync(dir, 'r');
    fs.fsyncSync(fd);
  } catch {
    // Windows cannot fsync a directory; the file's own fsync is the best available there.
  } finally {
    if (fd !== undefined) fs.closeSync(fd);
  }
}
