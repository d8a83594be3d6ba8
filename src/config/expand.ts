/**
 * `${VAR}`, `${VAR:-default}` and `${file:/path}` references in string values.
 *
 * Expansion happens on parsed YAML string scalars, never on the raw text, so a
 * secret containing `:` or `#` cannot change the structure of the file, and
 * every failure can be reported at the line of the value that referenced it.
 */
import { readFileSync } from 'node:fs';
import { isAbsolute, resolve } from 'node:path';

/** Where expansion reads from; passed in so tests need not touch process.env. */
export interface ExpandContext {
  readonly env: Readonly<Record<string, string | undefined>>;
  /** Directory that relative `${file:...}` paths are resolved against (the config file's). */
  readonly baseDir: string;
  /** Collects the names of the variables referenced (so unknown REBILL_* variables can be told apart). */
  readonly referenced?: Set<string>;
}

/** The expanded string, or the reasons it could not be expanded. */
export type ExpandResult = { ok: true; value: string } | { ok: false; errors: string[] };

const NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

/** True when the text contains anything expansion would act on. */
export function hasReferences(text: string): boolean {
  return text.includes('${');
}

/**
 * Expands every reference in `text`. `$${` is a literal `${`. An unset
 * variable without a default is an error rather than an empty string: an empty
 * API key would otherwise only surface as a gateway 401 at the first charge.
 * `:-` follows the shell: the default also applies to a variable set to "".
 */
export function expandReferences(text: string, ctx: ExpandContext, options: { quoteText?: boolean } = {}): ExpandResult {
  const quote = options.quoteText ?? true;
  let out = '';
  const errors: string[] = [];
  let i = 0;
  while (i < text.length) {
    if (text.startsWith('$${', i)) {
      out += '${';
      i += 3;
      continue;
    }
    if (!text.startsWith('${', i)) {
      out += text[i];
      i++;
      continue;
    }
    const close = text.indexOf('}', i + 2);
    if (close < 0) {
      const shown = quote ? ` "${text.slice(i)}"` : '';
      errors.push(`unterminated reference${shown} (expected \${VAR}, \${VAR:-default} or \${file:/path})`);
      break;
    }
    const body = text.slice(i + 2, close);
    const resolved = resolveReference(body, ctx, quote);
    if (resolved.ok) out += resolved.value;
    else errors.push(...resolved.errors);
    i = close + 1;
  }
  return errors.length > 0 ? { ok: false, errors } : { ok: true, value: out };
}

function resolveReference(body: string, ctx: ExpandContext, quote: boolean): ExpandResult {
  if (body.startsWith('file:')) return readSecretFile(body.slice('file:'.length), ctx);
  const sep = body.indexOf(':-');
  const name = sep < 0 ? body : body.slice(0, sep);
  if (!NAME.test(name)) {
    const shown = quote ? ` "\${${body}}"` : '';
    return { ok: false, errors: [`invalid reference${shown} (expected \${VAR}, \${VAR:-default} or \${file:/path})`] };
  }
  ctx.referenced?.add(name);
  const value = ctx.env[name];
  if (sep >= 0) return { ok: true, value: value === undefined || value === '' ? body.slice(sep + 2) : value };
  if (value === undefined) return { ok: false, errors: [`environment variable ${name} is not set (use \${${name}:-default} for a default)`] };
  return { ok: true, value };
}

function readSecretFile(path: string, ctx: ExpandContext): ExpandResult {
  if (path === '') return { ok: false, errors: ['${file:} needs a path, e.g. ${file:/run/secrets/api_key}'] };
  const full = isAbsolute(path) ? path : resolve(ctx.baseDir, path);
  try {
    // Secret files written by `echo` or editors end with a newline that is not part of the secret.
    return { ok: true, value: readFileSync(full, 'utf8').replace(/\r?\n$/, '') };
  } catch (err) {
    const reason = (err as NodeJS.ErrnoException).code ?? (err as Error).message;
    return { ok: false, errors: [`cannot read secret file ${full} (${reason})`] };
  }
}
