/**
 * CSV import (SPEC section 11): a header row of section 5's field names
 * (nested ones dotted: `customer.email`, `metadata.partnerId`), then one
 * subscription a line. Each line becomes the object `subscriptionInputSchema`
 * validates (an empty cell is an absent field), is checked against the
 * running config by the same rules as `POST /v1/subscriptions`
 * (subscriptionDraft), and valid lines are stored in batches of IMPORT_BATCH
 * per transaction (createSubscriptionsBatch), so a writer beside the daemon
 * holds SQLite's write lock only briefly.
 *
 * Re-importing a file creates no duplicates: every line must carry an `id` or
 * an `externalId` (with `source` when there is one), which the batch dedupes
 * by. A line with neither is rejected: a random id would make a second run of
 * the same file create every such line again.
 */
import type { Readable } from 'node:stream';
import { parse, type CsvError } from 'csv-parse';
import { parseWithConfigMessages, schemaProblems, subscriptionInputSchema, unknownKeyMessage, type SubscriptionInput } from '../config/index.js';
import { RebillError } from '../errors.js';
import { createSubscriptionsBatch, type Db } from '../store/index.js';
import { customerProblems, InputError, subscriptionDraft, type Catalog, type SubscriptionDraft } from './commands.js';

/** Lines per transaction. */
export const IMPORT_BATCH = 500;

/** The file cannot be imported at all (unknown or repeated column, no header, broken CSV). */
export class ImportFileError extends RebillError {}

/** One rejected line: its number in the file, its cells as written, and why. */
export interface RejectedLine {
  readonly line: number;
  readonly cells: readonly string[];
  readonly problems: ReadonlyArray<{ readonly field: string; readonly message: string }>;
}

export interface ImportOptions {
  readonly now: number;
  /** Validate only: nothing is written. */
  readonly dryRun?: boolean;
  /** Called once with the header row, before any line. */
  readonly onHeader?: (columns: readonly string[]) => void | Promise<void>;
  /** Called for each rejected line, in file order. */
  readonly onRejected?: (rejected: RejectedLine) => void | Promise<void>;
  /** Called after each batch with the number of lines read so far. */
  readonly onProgress?: (lines: number) => void;
}

export interface ImportSummary {
  /** Data lines read (the header is not one). */
  readonly lines: number;
  /** New subscriptions stored (in a dry run: valid lines that would be stored or found existing). */
  readonly imported: number;
  /** Lines whose id or live source + externalId was already stored (or appeared earlier in the file). */
  readonly existing: number;
  readonly rejected: number;
}

const CUSTOMER_KEYS = ['id', 'email', 'phone', 'firstName', 'lastName'] as const;
/** Nested objects, written as `customer.email` / `metadata.<key>` columns. */
const NESTED = new Set(['customer', 'metadata']);

/** Every column a file may have, metadata.<key> aside (any key). */
export function importColumns(): string[] {
  const top = Object.keys(subscriptionInputSchema.shape).filter((k) => !NESTED.has(k));
  return [...top, ...CUSTOMER_KEYS.map((k) => `customer.${k}`)];
}

/** The problems of a header row: unknown columns (with a did-you-mean), repeated ones and empty ones. */
export function headerProblems(header: readonly string[]): string[] {
  const allowed = importColumns();
  const known = new Set(allowed);
  const problems: string[] = [];
  const seen = new Set<string>();
  header.forEach((column, i) => {
    if (seen.has(column)) problems.push(`column ${i + 1} "${column}": repeated`);
    seen.add(column);
    if (column === '') problems.push(`column ${i + 1}: the header names no field`);
    else if (column.startsWith('metadata.')) {
      if (column.length === 'metadata.'.length) problems.push(`column ${i + 1} "${column}": a metadata key must not be empty`);
    } else if (!known.has(column)) problems.push(`column ${i + 1} "${column}": ${unknownKeyMessage(column, allowed).replace(/^unknown key/, 'unknown column')}`);
  });
  return problems;
}

/** A line as the input object the schema validates: dotted columns nested, empty cells left out. */
export function lineToInput(header: readonly string[], cells: readonly string[]): Record<string, unknown> {
  const input: Record<string, unknown> = {};
  header.forEach((column, i) => {
    const cell = cells[i];
    if (cell === undefined || cell === '') return;
    const dot = column.indexOf('.');
    if (dot < 0) {
      input[column] = cell;
      return;
    }
    const parent = column.slice(0, dot);
    const nested = (input[parent] ??= {}) as Record<string, string>;
    nested[column.slice(dot + 1)] = cell;
  });
  return input;
}

/** A problem's path as a column name (`customer.email`); the line itself when it has none. */
function field(path: readonly PropertyKey[]): string {
  return path.length === 0 ? '(line)' : path.map(String).join('.');
}

type Checked = { ok: true; input: SubscriptionInput; draft: SubscriptionDraft } | { ok: false; problems: RejectedLine['problems'] };

/** A line's shape (the API's schema) and its fit with the config (the API's rules); no database read. */
function checkLine(catalog: Catalog, raw: Record<string, unknown>, now: number): Checked {
  const parsed = parseWithConfigMessages(subscriptionInputSchema, raw);
  if (!parsed.success) {
    return { ok: false, problems: schemaProblems(parsed.error.issues, subscriptionInputSchema, raw).map((p) => ({ field: field(p.path), message: p.message })) };
  }
  const input = parsed.data;
  const problems: Array<{ field: string; message: string }> = [];
  if (input.id === undefined && input.externalId === null) {
    problems.push({ field: 'id', message: 'required (or externalId, with source when there is one): a re-import finds the line by it' });
  }
  let draft: SubscriptionDraft | undefined;
  try {
    draft = subscriptionDraft(catalog, input, now);
  } catch (err) {
    if (!(err instanceof InputError)) throw err;
    problems.push(...err.problems.map((p) => ({ field: field(p.path), message: p.message })));
  }
  if (problems.length > 0 || !draft) return { ok: false, problems };
  return { ok: true, input, draft };
}

interface Pending {
  readonly line: number;
  readonly cells: readonly string[];
  readonly input: SubscriptionInput;
  readonly draft: SubscriptionDraft;
}

/**
 * Reads a CSV stream and imports its valid lines, IMPORT_BATCH per
 * transaction. Lines are checked as they stream in (memory stays flat);
 * rejected ones go to `onRejected`. Throws ImportFileError for a file that
 * cannot be imported (nothing is written when the header is bad; a CSV
 * syntax error stops the import after the batches already stored).
 */
export async function importSubscriptions(db: Db, catalog: Catalog, source: Readable, options: ImportOptions): Promise<ImportSummary> {
  const { now } = options;
  const parser = source.pipe(parse({ bom: true, info: true, relax_column_count: true, skip_empty_lines: true }));
  source.on('error', (err) => parser.destroy(err));
  let header: string[] | undefined;
  let lines = 0;
  let imported = 0;
  let existing = 0;
  let rejected = 0;
  let batch: Pending[] = [];

  const reject = async (r: RejectedLine) => {
    rejected++;
    await options.onRejected?.(r);
  };
  const flush = async () => {
    if (batch.length === 0) return;
    const pending = batch;
    batch = [];
    // customerId names a row in the database: checked here, one query per such line.
    const ready: Pending[] = [];
    for (const p of pending) {
      const problems = await customerProblems(db, p.input);
      if (problems.length > 0) await reject({ line: p.line, cells: p.cells, problems: problems.map((q) => ({ field: field(q.path), message: q.message })) });
      else ready.push(p);
    }
    if (options.dryRun) imported += ready.length;
    else if (ready.length > 0) {
      const outcomes = await createSubscriptionsBatch(
        db,
        ready.map((p) => p.draft),
        now,
      );
      for (const o of outcomes) {
        if (o.created) imported++;
        else existing++;
      }
    }
    options.onProgress?.(lines);
  };

  try {
    for await (const { record, info } of parser as AsyncIterable<{ record: string[]; info: { lines: number } }>) {
      if (header === undefined) {
        header = record.map((c) => c.trim());
        const problems = headerProblems(header);
        if (problems.length > 0) throw new ImportFileError('IMPORT_HEADER_INVALID', `the header (line ${info.lines}) cannot be imported: ${problems.join('; ')}`);
        await options.onHeader?.(header);
        continue;
      }
      lines++;
      if (record.length !== header.length) {
        await reject({ line: info.lines, cells: record, problems: [{ field: '(line)', message: `expected ${header.length} fields as in the header; got ${record.length}` }] });
        continue;
      }
      const checked = checkLine(catalog, lineToInput(header, record), now);
      if (!checked.ok) await reject({ line: info.lines, cells: record, problems: checked.problems });
      else batch.push({ line: info.lines, cells: record, input: checked.input, draft: checked.draft });
      if (batch.length >= IMPORT_BATCH) await flush();
      else if (lines % IMPORT_BATCH === 0) options.onProgress?.(lines);
    }
  } catch (err) {
    if (isCsvError(err)) {
      await flush();
      throw new ImportFileError('IMPORT_CSV_INVALID', `line ${err.lines ?? '?'}: ${err.message}`);
    }
    throw err;
  }
  if (header === undefined) throw new ImportFileError('IMPORT_HEADER_MISSING', 'the file is empty: expected a header row of field names');
  await flush();
  return { lines, imported, existing, rejected };
}

function isCsvError(err: unknown): err is CsvError & { lines?: number } {
  const code = err instanceof Error ? (err as Error & { code?: unknown }).code : undefined;
  return typeof code === 'string' && code.startsWith('CSV_');
}
