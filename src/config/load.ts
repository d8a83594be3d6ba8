/**
 * Loading: read the file, parse YAML with positions, expand references, apply
 * REBILL_* overrides, validate with the schema, and turn every failure into a
 * located ConfigProblem. Nothing here knows about individual settings; that
 * is the schema's job.
 */
import { readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import type * as z from 'zod';
import { ConfigError, formatPath, suggestKey, unknownKeyMessage, type ConfigProblem, type PathSegment } from './problems.js';
import { configErrorMap, configSchema, isAmountPath, scenarioSchema, type Config, type Scenario } from './schema.js';
import { applyEnvOverrides, readYamlSource, type SourceTree } from './source.js';
import { recordLoadWarnings } from './warnings.js';

type Env = Readonly<Record<string, string | undefined>>;

/** Where the configuration lives when neither --config nor REBILL_CONFIG says (SPEC section 4). */
export const DEFAULT_CONFIG_FILE = 'config/rebill.yaml';

/** The configuration file to use: the --config flag, else env REBILL_CONFIG, else DEFAULT_CONFIG_FILE. */
export function configFilePath(flag: string | undefined, env: Env = process.env): string {
  return flag || env.REBILL_CONFIG || DEFAULT_CONFIG_FILE;
}

/**
 * Reads and validates a configuration file. Throws ConfigError listing every
 * problem (with file, line, column and key path); a missing file is one problem.
 */
export function loadConfig(file: string, env: Env = process.env): Config {
  return parseConfig(readSource(file), file, env);
}

/**
 * Validates configuration text as if read from `file` (used for messages and
 * for resolving relative `${file:...}` paths). `REBILL_*` variables in `env`
 * override daemon settings.
 */
export function parseConfig(text: string, file: string, env: Env = process.env): Config {
  const referenced = new Set<string>();
  const tree = readYamlSource(text, file, { env, baseDir: dirname(resolve(file)), referenced }, { asWritten: isAmountPath });
  if (tree.problems.length > 0 && tree.value === undefined) throw new ConfigError(tree.problems);
  applyEnvOverrides(tree, env, (section) => allowedKeysAt(configSchema, [section], tree.value), referenced);
  const config = validate(configSchema, tree);
  recordLoadWarnings(config, tree.warnings);
  return config;
}

/**
 * Reads and validates a `rebill simulate` scenario file: the config's
 * plans/gateways/retry/scheduler sections plus start, until, subscriptions
 * and actions. `env` is used for `${VAR}` expansion only; scenarios are not
 * subject to REBILL_* overrides, so a run is reproducible from the file alone.
 */
export function loadScenario(file: string, env: Env = process.env): Scenario {
  return parseScenario(readSource(file), file, env);
}

/** parseConfig's counterpart for scenario text. */
export function parseScenario(text: string, file: string, env: Env = process.env): Scenario {
  const tree = readYamlSource(text, file, { env, baseDir: dirname(resolve(file)) }, { asWritten: isAmountPath });
  if (tree.problems.length > 0 && tree.value === undefined) throw new ConfigError(tree.problems);
  return validate(scenarioSchema, tree);
}

function readSource(file: string): string {
  try {
    return readFileSync(file, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    const reason =
      code === 'ENOENT' ? 'file not found' : code === 'EISDIR' ? 'is a directory, not a file' : code === 'EACCES' ? 'permission denied' : (err as Error).message;
    throw new ConfigError([{ file, line: 0, column: 0, path: '', message: `cannot read configuration: ${reason}` }]);
  }
}

function validate<S extends z.ZodType>(schema: S, tree: SourceTree): z.output<S> {
  const result = schema.safeParse(tree.value, { error: configErrorMap });
  const problems = [...tree.problems];
  if (!result.success) {
    // An expansion problem already explains the value at that path; the schema's
    // complaint about the unexpanded "${...}" text would only repeat it.
    const explained = tree.problems.map((p) => p.path);
    for (const problem of issuesToProblems(result.error.issues, tree, schema)) {
      if (!explained.some((path) => path !== '' && (problem.path === path || problem.path.startsWith(`${path}.`) || problem.path.startsWith(`${path}[`)))) {
        problems.push(problem);
      }
    }
  }
  if (problems.length > 0) throw new ConfigError(sortProblems(problems));
  return result.data as z.output<S>;
}

/** Env-override problems first (they have no line), then in file order. */
function sortProblems(problems: ConfigProblem[]): ConfigProblem[] {
  return problems
    .map((p, i) => ({ p, i }))
    .sort((a, b) => a.p.line - b.p.line || a.p.column - b.p.column || a.i - b.i)
    .map(({ p }) => p);
}

function issuesToProblems(issues: readonly z.core.$ZodIssue[], tree: SourceTree, schema: z.ZodType): ConfigProblem[] {
  const problems: ConfigProblem[] = [];
  const push = (path: PathSegment[], message: string, at: 'key' | 'value', from: PathSegment[] = path) => {
    const pos = tree.locate(from, at);
    problems.push({ file: pos.file, line: pos.line, column: pos.column, path: formatPath(path), message });
  };
  // `curency: USD` is one mistake, not two: the "currency: required" it causes is dropped.
  const explainedByTypo = new Set<string>();
  for (const issue of issues) {
    const path = issue.path.filter((s): s is PathSegment => typeof s === 'string' || typeof s === 'number');
    if (issue.code === 'unrecognized_keys') {
      const allowed = allowedKeysAt(schema, path, tree.value);
      for (const key of issue.keys) {
        push([...path, key], unknownKeyMessage(key, allowed), 'key');
        const meant = suggestKey(key, allowed);
        if (meant) explainedByTypo.add(formatPath([...path, meant]));
      }
      continue;
    }
    const params = issue.code === 'custom' ? (issue.params as { at?: 'key'; fallback?: PathSegment[] } | undefined) : undefined;
    const from = params?.fallback && !tree.has(path) ? params.fallback : path;
    push(path, issue.message, issue.code === 'invalid_key' ? 'key' : (params?.at ?? 'value'), from);
  }
  return problems.filter((p) => !(explainedByTypo.has(p.path) && p.message.startsWith('required')));
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

function allowedKeysAt(schema: z.ZodType, path: readonly PathSegment[], root: unknown): string[] {
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
