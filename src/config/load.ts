/**
 * Loading: read the file, parse YAML with positions, expand references, apply
 * REBILL_* overrides, validate with the schema, and turn every failure into a
 * located ConfigProblem. Nothing here knows about individual settings; that
 * is the schema's job.
 */
import { readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import type * as z from 'zod';
import { allowedKeysAt, schemaProblems } from './issues.js';
import { ConfigError, formatPath, type ConfigProblem } from './problems.js';
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
  return schemaProblems(issues, schema, tree.value).map((problem) => {
    const from = problem.fallback && !tree.has(problem.path) ? problem.fallback : problem.path;
    const pos = tree.locate(from, problem.at);
    return { file: pos.file, line: pos.line, column: pos.column, path: formatPath(problem.path), message: problem.message };
  });
}
