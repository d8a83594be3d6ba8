/**
 * Loading: read the file, parse YAML with positions, expand references, apply
 * REBILL_* overrides, validate with the schema, and turn every failure into a
 * located ConfigProblem. Nothing here knows about individual settings; that
 * is the schema's job.
 */
import { isAscii } from 'node:buffer';
import { readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import type * as z from 'zod';
import { allowedKeysAt, schemaProblems } from './issues.js';
import { ConfigError, formatPath, type ConfigProblem } from './problems.js';
import { configSchema, isAmountPath, parseWithConfigMessages, scenarioSchema, seedListChecks, seedListSchema, type Config, type Scenario } from './schema.js';
import { SeedList } from './seeds.js';
import { applyEnvOverrides, readYamlSource, SEED_KEY, type SourceTree } from './source.js';
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
  let seeds = new SeedSlices();
  const onSeedSlice = (from: number, values: readonly unknown[], tree: SourceTree): void => {
    if (from === 0) seeds = new SeedSlices(); // a new reading (the first fell back to the whole document)
    seeds.add(from, values, tree);
  };
  const tree = readYamlSource(text, file, { env, baseDir: dirname(resolve(file)), referenced }, { asWritten: isAmountPath, onSeedSlice });
  if (tree.problems.length > 0 && tree.value === undefined) throw new ConfigError(tree.problems);
  applyEnvOverrides(tree, env, (section) => allowedKeysAt(configSchema, [section], tree.value), referenced);
  const validated = validate(configSchema, tree, tree.seedsInSlices ? seeds.problems : []);
  const config = { ...validated, subscriptions: tree.seedsInSlices ? seeds.list() : SeedList.of(validated.subscriptions) };
  recordLoadWarnings(config, tree.warnings);
  return config;
}

/**
 * A seed list validated a slice at a time as it is read (ReadOptions.onSeedSlice),
 * so that no more than a slice of seeds is ever alive as objects: each slice
 * gets the seed schema and the rules across seeds (seedListChecks: only the
 * ids seen so far are kept), its problems are located as validate() locates
 * the rest, and a valid slice is kept as text (SeedList).
 */
class SeedSlices {
  readonly problems: ConfigProblem[] = [];
  private readonly slices: Buffer[] = [];
  private length = 0;
  private checks: ReturnType<typeof seedListChecks> | undefined;

  add(from: number, values: readonly unknown[], tree: SourceTree): void {
    // The plans as written (the root is read before the list): a seed names a plan that is there even when that plan has problems of its own.
    this.checks ??= seedListChecks((tree.value as Record<string, unknown>).plans);
    const result = parseWithConfigMessages(seedListSchema, values);
    const issues: z.core.$ZodIssue[] = result.success ? [] : result.error.issues.map((issue) => ({ ...issue, path: [SEED_KEY, from + Number(issue.path[0]), ...issue.path.slice(1)] }));
    this.checks.check(values, from, { addIssue: (issue) => issues.push(issue as z.core.$ZodIssue) });
    this.length = from + values.length;
    if (result.success && issues.length === 0) {
      this.slices.push(SeedList.slice(result.data));
      return;
    }
    this.problems.push(...unexplained(issuesToProblems(issues, tree, configSchema), tree));
  }

  list(): SeedList {
    return new SeedList(this.slices, this.length);
  }
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
    const bytes = readFileSync(file);
    // Node keeps a large ASCII (latin1) string outside the V8 heap: a 13 MB seed list's text then does
    // not count towards the heap's growth while it is read (seeds.ts); UTF-8 text is decoded into it.
    return isAscii(bytes) ? bytes.toString('latin1') : bytes.toString('utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    const reason =
      code === 'ENOENT' ? 'file not found' : code === 'EISDIR' ? 'is a directory, not a file' : code === 'EACCES' ? 'permission denied' : (err as Error).message;
    throw new ConfigError([{ file, line: 0, column: 0, path: '', message: `cannot read configuration: ${reason}` }]);
  }
}

/** Validates the tree's value; `more` are problems found on the side (the seed list's, SeedSlices). */
function validate<S extends z.ZodType>(schema: S, tree: SourceTree, more: readonly ConfigProblem[] = []): z.output<S> {
  const result = parseWithConfigMessages(schema, tree.value);
  const problems = [...tree.problems, ...more];
  if (!result.success) problems.push(...unexplained(issuesToProblems(result.error.issues, tree, schema), tree));
  if (problems.length > 0) throw new ConfigError(sortProblems(problems));
  return result.data as z.output<S>;
}

/**
 * The schema's problems less those an expansion problem already explains: the
 * schema's complaint about the unexpanded "${...}" text would only repeat it.
 */
function unexplained(problems: readonly ConfigProblem[], tree: SourceTree): ConfigProblem[] {
  const explained = tree.problems.map((p) => p.path);
  return problems.filter((problem) => !explained.some((path) => path !== '' && (problem.path === path || problem.path.startsWith(`${path}.`) || problem.path.startsWith(`${path}[`))));
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
