/**
 * zod issues as problems at key paths, for every reader of the schemas (the
 * config loader adds file and line; the API turns paths into JSON pointers):
 * an unknown key becomes one problem per key with a "did you mean" hint, and
 * the "required" that a misspelt key causes is dropped (`curency: USD` is one
 * mistake, not two).
 */
import type * as z from 'zod';
import { formatPath, suggestKey, unknownKeyMessage, type PathSegment } from './problems.js';

/** One problem: where (key path), what, and whether it is about the key itself or its value. */
export interface SchemaProblem {
  readonly path: PathSegment[];
  readonly message: string;
  readonly at: 'key' | 'value';
  /** Where to point instead when the value at `path` was never written (a default that conflicts). */
  readonly fallback?: PathSegment[];
}

/** The problems of a failed parse of `value` with `schema`, in issue order. */
export function schemaProblems(issues: readonly z.core.$ZodIssue[], schema: z.ZodType, value: unknown): SchemaProblem[] {
  const problems: SchemaProblem[] = [];
  const explainedByTypo = new Set<string>();
  for (const issue of issues) {
    const path = issue.path.filter((s): s is PathSegment => typeof s === 'string' || typeof s === 'number');
    if (issue.code === 'unrecognized_keys') {
      const allowed = allowedKeysAt(schema, path, value);
      for (const key of issue.keys) {
        problems.push({ path: [...path, key], message: unknownKeyMessage(key, allowed), at: 'key' });
        const meant = suggestKey(key, allowed);
        if (meant) explainedByTypo.add(formatPath([...path, meant]));
      }
      continue;
    }
    const params = issue.code === 'custom' ? (issue.params as { at?: 'key'; fallback?: PathSegment[] } | undefined) : undefined;
    problems.push({
      path,
      message: issue.message,
      at: issue.code === 'invalid_key' ? 'key' : (params?.at ?? 'value'),
      ...(params?.fallback ? { fallback: params.fallback } : {}),
    });
  }
  return problems.filter((p) => !(explainedByTypo.has(formatPath(p.path)) && p.message.startsWith('required')));
}

// ---------------------------------------------------------------------------
// The allowed keys of the object schema at a path, for "did you mean" hints.
// zod's unrecognized_keys issue names the bad keys but not the good ones, so we
// walk the schema along the issue's path, choosing union branches by the data.

interface SchemaDef {
  type: string;
  innerType?: z.ZodType;
  in?: z.ZodType;
  out?: z.ZodType;
  shape?: Record<string, z.ZodType>;
  element?: z.ZodType;
  valueType?: z.ZodType;
  options?: z.ZodType[];
  discriminator?: string;
  values?: unknown[];
}

function defOf(schema: z.ZodType): SchemaDef {
  return (schema as unknown as { _zod: { def: SchemaDef } })._zod.def;
}

/** Strips wrappers (defaults, optionals, pipes, transforms) and picks the union branch the data took. */
function unwrap(schema: z.ZodType, data: unknown): z.ZodType {
  for (let i = 0; i < 32; i++) {
    const def = defOf(schema);
    if (def.innerType) schema = def.innerType;
    else if (def.type === 'pipe' && def.in && def.out) schema = defOf(def.in).type === 'transform' ? def.out : def.in;
    else if (def.type === 'union' && def.options) {
      const discriminator = def.discriminator;
      const value = discriminator && data !== null && typeof data === 'object' ? (data as Record<string, unknown>)[discriminator] : undefined;
      const branch = def.options.find((option) => {
        const tag = discriminator ? defOf(unwrap(option, data)).shape?.[discriminator] : undefined;
        return tag !== undefined && (defOf(tag).values ?? []).includes(value);
      });
      if (!branch) return schema;
      schema = branch;
    } else return schema;
  }
  return schema;
}

export function allowedKeysAt(schema: z.ZodType, path: readonly PathSegment[], root: unknown): string[] {
  let current = schema;
  let data = root;
  for (const segment of path) {
    const def = defOf(unwrap(current, data));
    const next = def.shape?.[String(segment)] ?? def.element ?? def.valueType;
    if (!next) return [];
    current = next;
    data = data !== null && typeof data === 'object' ? (data as Record<string | number, unknown>)[segment] : undefined;
  }
  return Object.keys(defOf(unwrap(current, data)).shape ?? {});
}
