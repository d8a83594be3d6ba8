/**
 * YAML text -> plain values plus the file position of every key path.
 *
 * We walk the `yaml` package's node tree ourselves instead of calling
 * `toJS()` so that each key and each value keeps its line and column (through
 * a LineCounter), duplicate keys are reported with their path and both lines,
 * and `${...}` references are expanded where they stand.
 */
import { isAlias, isCollection, isMap, isPair, isScalar, isSeq, LineCounter, Pair, parse as parseYaml, parseDocument, Scalar, visit, YAMLMap, type Alias, type Document, type Node } from 'yaml';
import { expandReferences, hasReferences, type ExpandContext } from './expand.js';
import { formatPath, isSecretPath, suggestKey, type ConfigProblem, type PathSegment } from './problems.js';

/** A position in a source: the config file, or an env var (line 0). */
export interface SourcePosition {
  readonly file: string;
  readonly line: number;
  readonly column: number;
}

interface Located {
  /** Where the key is written; absent for array items and the root. */
  readonly key?: SourcePosition;
  /** Where the value starts. */
  readonly value: SourcePosition;
}

/** Parsed values plus the positions needed to point problems at the right line. */
export class SourceTree {
  readonly problems: ConfigProblem[] = [];
  /** Things that are not errors but probably mistakes (an unknown REBILL_* variable). */
  readonly warnings: string[] = [];
  /** True when the seed list went to ReadOptions.onSeedSlice instead of into the value. */
  seedsInSlices = false;
  private readonly positions = new Map<string, Located>();
  /**
   * Items of a list whose positions are recorded only when asked for (one-line
   * seeds: 100,000 of them would hold 800,000 positions for nothing), and how.
   */
  private deferred: { readonly key: string; readonly materialize: (index: number) => void; readonly done: Set<number> } | undefined;

  constructor(
    readonly file: string,
    public value: unknown,
  ) {}

  /** Records where the value at `path` (and its key) came from. */
  record(path: readonly PathSegment[], located: Located): void {
    this.positions.set(formatPath(path), located);
  }

  /** Defers the positions below `[key, index]` to `materialize(index)`, which records them when first needed. */
  deferItems(key: string, materialize: (index: number) => void): void {
    this.deferred = { key, materialize, done: new Set() };
  }

  /** Copies another tree's positions (a deferred item's, recorded on the side). */
  adopt(other: SourceTree): void {
    for (const [key, located] of other.positions) this.positions.set(key, located);
  }

  private materialize(path: readonly PathSegment[]): void {
    const d = this.deferred;
    const index = path[1];
    if (!d || path[0] !== d.key || typeof index !== 'number' || d.done.has(index)) return;
    d.done.add(index);
    d.materialize(index);
  }

  /** Drops the positions below `path`: an env override replaced that whole value. */
  forgetBelow(path: readonly PathSegment[]): void {
    const prefix = formatPath(path);
    for (const key of [...this.positions.keys()]) {
      if (key.length > prefix.length && key.startsWith(prefix) && (key[prefix.length] === '.' || key[prefix.length] === '[')) {
        this.positions.delete(key);
      }
    }
  }

  /** True when the source itself wrote (or an env override set) this exact path. */
  has(path: readonly PathSegment[]): boolean {
    this.materialize(path);
    return this.positions.has(formatPath(path));
  }

  /**
   * The position of `path`, or of its nearest ancestor that exists: a missing
   * required key is reported at the mapping that should have contained it.
   * `at: 'key'` prefers the key's own position (unknown and duplicate keys).
   */
  locate(path: readonly PathSegment[], at: 'key' | 'value' = 'value'): SourcePosition {
    this.materialize(path);
    for (let n = path.length; n >= 0; n--) {
      const found = this.positions.get(formatPath(path.slice(0, n)));
      if (found) return (at === 'key' && n === path.length ? found.key : undefined) ?? found.value;
    }
    return { file: this.file, line: 1, column: 1 };
  }

  /** Adds a problem located at `path`. */
  problem(path: readonly PathSegment[], message: string, at: 'key' | 'value' = 'value'): void {
    const pos = this.locate(path, at);
    this.problems.push({ file: pos.file, line: pos.line, column: pos.column, path: formatPath(path), message });
  }
}

/** How a source is read. */
export interface ReadOptions {
  /**
   * Paths whose scalar is kept as its source text, quoted or not, instead of
   * the value YAML resolves (amounts, SPEC section 3: `9.990` must not become 9.99).
   */
  readonly asWritten?: (path: readonly PathSegment[]) => boolean;
  /** Parse the whole document at once, never the seed list item by item (the reference the tests compare with). */
  readonly wholeDocument?: boolean;
  /**
   * Receives a seed list read item by item a slice at a time, in order, instead
   * of the value holding it (its `subscriptions` is then an empty list and
   * `tree.seedsInSlices` is true): 100,000 seeds' objects alive together were
   * the peak of loading. Only a reading that returns with `seedsInSlices`
   * counts; a slice of a reading that fell back to the whole document may
   * have been handed over before (a new reading starts again at 0).
   */
  readonly onSeedSlice?: (from: number, seeds: readonly unknown[], tree: SourceTree) => void;
}

interface BuildContext {
  readonly tree: SourceTree;
  readonly doc: Document;
  readonly lines: LineCounter;
  readonly expand: ExpandContext;
  readonly options: ReadOptions;
  /** Each alias's anchored node, resolved once by checkAliases. */
  readonly targets: Map<Alias, Node>;
  /** Lines of the file before the parsed text (a slice of the seed list starts further down). */
  readonly lineOffset: number;
  /** Lines left out of the parsed text after line `after` (1-based): the seed list, when the rest of the file is parsed without it. */
  readonly gap?: { readonly after: number; readonly lines: number };
  /** False while building a deferred item: its positions are recorded later, if ever (SourceTree.deferItems). */
  readonly record: boolean;
}

// Alias chains deeper than this are a mistake or an attack (billion laughs), not a config.
const MAX_DEPTH = 64;

/**
 * The yaml library's default `maxAliasCount` for `toJS()`: we walk the tree
 * ourselves, so we apply the same limit the same way (see checkAliases).
 */
export const MAX_ALIAS_COUNT = 100;

/**
 * Parses YAML text into a SourceTree. Syntax errors become problems with the
 * parser's line and column (and no value); duplicate keys and failed `${...}`
 * expansions become problems at their key path. A document whose aliases
 * would expand beyond MAX_ALIAS_COUNT (a "billion laughs" file) is refused,
 * with no value, before anything is expanded.
 */
export function readYamlSource(text: string, file: string, expand: ExpandContext, options: ReadOptions = {}): SourceTree {
  return (options.wholeDocument ? undefined : readSeedListInSlices(text, file, expand, options)) ?? readWholeDocument(text, file, expand, options);
}

function readWholeDocument(text: string, file: string, expand: ExpandContext, options: ReadOptions, gap?: BuildContext['gap']): SourceTree {
  const tree = new SourceTree(file, undefined);
  const lines = new LineCounter();
  // uniqueKeys off: we report duplicates ourselves, with the key path the parser does not know.
  const doc = parseDocument(text, { lineCounter: lines, uniqueKeys: false, prettyErrors: true });
  if (doc.errors.length > 0) {
    for (const err of doc.errors) {
      const pos = err.linePos?.[0];
      // The parser's message repeats the position and appends a code frame; keep the first sentence.
      const message = err.message.split('\n')[0]!.replace(/ at line \d+, column \d+:?$/, '');
      tree.problems.push({ file, line: pos?.line ?? 0, column: pos?.col ?? 0, path: '', message: `YAML syntax: ${message}` });
    }
    return tree;
  }
  const ctx: BuildContext = { tree, doc, lines, expand, options, targets: new Map(), lineOffset: 0, record: true, ...(gap ? { gap } : {}) };
  const bomb = checkAliases(ctx);
  if (bomb) {
    tree.problems.push(bomb);
    return tree;
  }
  tree.value = doc.contents === null ? {} : build(doc.contents as Node, [], ctx, 0);
  tree.record([], { value: position(ctx, (doc.contents as Node | null)?.range?.[0] ?? 0) });
  return tree;
}

function position(ctx: BuildContext, offset: number): SourcePosition {
  const { line, col } = ctx.lines.linePos(offset);
  const gap = ctx.gap && line > ctx.gap.after ? ctx.gap.lines : 0;
  return { file: ctx.tree.file, line: line + ctx.lineOffset + gap, column: col };
}

interface AnchorUse {
  /** Aliases to this anchor seen so far. */
  count: number;
  /** The anchored node's own expansion weight (0 until computed, as in yaml). */
  aliasCount: number;
}

/**
 * Applies the yaml library's alias limit the way its `toJS()` does (yaml's
 * Alias.resolve): visiting the document once in order, each alias adds one
 * use to its anchor, and the document is refused as soon as an anchor's uses
 * times its weight (the largest weight of an alias inside it, 1 for a scalar)
 * exceed MAX_ALIAS_COUNT. The product grows with the expanded size, so nine
 * levels of nine aliases are refused after a few hundred steps instead of
 * being expanded 9^9 times. Also resolves every alias once, for build().
 */
function checkAliases(ctx: BuildContext): ConfigProblem | undefined {
  const anchors = new Map<string, Node>();
  const uses = new Map<Node, AnchorUse>();
  const weight = (node: unknown): number => {
    if (isAlias(node)) {
      const target = ctx.targets.get(node);
      const use = target && uses.get(target);
      return use ? use.count * use.aliasCount : 0;
    }
    if (isCollection(node)) return node.items.reduce<number>((max, item) => Math.max(max, weight(item)), 0);
    if (isPair(node)) return Math.max(weight(node.key), weight(node.value));
    return 1;
  };
  let problem: ConfigProblem | undefined;
  visit(ctx.doc, {
    Node: (_key, node, ancestors) => {
      if (isAlias(node)) {
        const target = anchors.get(node.source);
        if (!target) return undefined;
        const { line, column } = position(ctx, node.range?.[0] ?? 0);
        if (ancestors.includes(target)) {
          // `&a [*a]` expands forever; yaml's limit does not see it (its weight stays 0).
          problem = { file: ctx.tree.file, line, column, path: '', message: `YAML aliases: *${node.source} refers to the node that contains it` };
          return visit.BREAK;
        }
        ctx.targets.set(node, target);
        // yaml counts the anchor's own occurrence as the first use.
        const use = uses.get(target) ?? { count: 1, aliasCount: 0 };
        uses.set(target, use);
        use.count += 1;
        if (use.aliasCount === 0) use.aliasCount = weight(target);
        if (use.count * use.aliasCount > MAX_ALIAS_COUNT) {
          problem = {
            file: ctx.tree.file,
            line,
            column,
            path: '',
            message: `YAML aliases: *${node.source} would expand the document beyond ${MAX_ALIAS_COUNT} aliased nodes (the yaml library's maxAliasCount); refused as a resource-exhaustion attack`,
          };
          return visit.BREAK;
        }
        return undefined;
      }
      // An anchor applies to the aliases after it; a later anchor of the same name replaces it.
      if (node.anchor) anchors.set(node.anchor, node);
      return undefined;
    },
  });
  return problem;
}

function build(node: unknown, path: PathSegment[], ctx: BuildContext, depth: number): unknown {
  if (depth > MAX_DEPTH) {
    ctx.tree.problem(path, `nested more than ${MAX_DEPTH} levels deep`);
    return null;
  }
  if (isAlias(node)) {
    const target = ctx.targets.get(node);
    return target ? build(target, path, ctx, depth + 1) : null;
  }
  if (isMap(node)) {
    const out: Record<string, unknown> = {};
    const firstLine = new Map<string, number>();
    for (const pair of node.items) {
      const keyNode = pair.key as Node | null;
      const keyPos = position(ctx, keyNode?.range?.[0] ?? node.range?.[0] ?? 0);
      if (!isScalar(keyNode) || keyNode.value === null || typeof keyNode.value === 'object') {
        ctx.tree.problems.push({ ...keyPos, path: formatPath(path), message: 'keys must be plain names' });
        continue;
      }
      const key = String(keyNode.value);
      const keyPath = [...path, key];
      const valueNode = pair.value as Node | null;
      const valuePos = valueNode?.range ? position(ctx, valueNode.range[0]) : keyPos;
      const earlier = firstLine.get(key);
      if (earlier !== undefined) {
        ctx.tree.problems.push({ ...keyPos, path: formatPath(keyPath), message: `duplicate key (first defined on line ${earlier})` });
        continue;
      }
      if (key === '__proto__') {
        // Assigning it would change the object's prototype instead of adding a key.
        ctx.tree.problems.push({ ...keyPos, path: formatPath(keyPath), message: 'reserved key name' });
        continue;
      }
      firstLine.set(key, keyPos.line);
      if (ctx.record) ctx.tree.record(keyPath, { key: keyPos, value: valuePos });
      out[key] = valueNode === null ? null : build(valueNode, keyPath, ctx, depth + 1);
    }
    return out;
  }
  if (isSeq(node)) {
    const seqStart = position(ctx, node.range?.[0] ?? 0);
    return node.items.map((item, index) => buildItem(item as Node | null, path, index, seqStart, ctx, depth));
  }
  if (isScalar(node)) {
    // `source` is the scalar's text as written (unquoted, unescaped): `9.990`, not 9.99.
    const value = ctx.options.asWritten?.(path) ? (node.source ?? String(node.value)) : node.value;
    if (typeof value !== 'string' || !hasReferences(value)) return value;
    // A secret's own text (it may be the secret) is never quoted in a message.
    const expanded = expandReferences(value, ctx.expand, { quoteText: !isSecretPath(path) });
    if (expanded.ok) return expanded.value;
    for (const message of expanded.errors) ctx.tree.problem(path, message);
    return value;
  }
  return null;
}

/** One sequence item: its position (the seq's own when the item has none), then its value. */
function buildItem(itemNode: Node | null, path: readonly PathSegment[], index: number, seqStart: SourcePosition, ctx: BuildContext, depth: number): unknown {
  const itemPath = [...path, index];
  if (ctx.record) ctx.tree.record(itemPath, { value: itemNode?.range ? position(ctx, itemNode.range[0]) : seqStart });
  return itemNode === null ? null : build(itemNode, itemPath, ctx, depth + 1);
}

// ---------------------------------------------------------------------------
// The seed list in slices (issue 7 item 18). The yaml library builds a token
// tree and a node tree for the whole document before we see it: for 100,000
// seeds that is 13 s and about 1 GB. A block list under a root
// `subscriptions:` key is therefore read item by item: the rest of the file
// is parsed as before without the list's lines (the lines after it numbered as in the file),
// each seed written as a one-line flow mapping of plain names, quoted strings
// without escapes and small whole numbers is turned into the yaml library's
// own node types directly, and any other seed is parsed by the yaml library,
// a few hundred at a time. The nodes go through the same build() as the
// whole-document path, so values, positions and problems are the same. Any
// doubt (anchors, aliases, tabs, CR, directives, several documents, a YAML
// error anywhere) reads the whole document instead, which reports it.

/** The root key of the seed list. */
export const SEED_KEY = 'subscriptions';
/** Seeds the yaml library parses in one go when they are not in the one-line form. */
const SLICE_ITEMS = 500;
/**
 * Seeds handed to ReadOptions.onSeedSlice at a time. Few enough that a slice's objects are
 * not still alive at most young-generation GCs: V8 would then allocate them in the old
 * generation (allocation-site pretenuring), as garbage that waits for a full GC.
 */
const SEED_SLICE = 100;
const SEED_KEY_LINE = /^subscriptions:( +#.*| *)$/;
/** Root-level lines that could be, or could hide, the seed key, or change how the file is read. */
const DOUBTFUL_ROOT_LINE = /^(["']?subscriptions|%|\?|---(\s|$)|\.\.\.(\s|$))/;
/** Plain scalars that the core schema reads as something other than a string. */
const CORE_NON_STRING = /^(null|Null|NULL|true|True|TRUE|false|False|FALSE)$/;
const PLAIN_KEY = /[A-Za-z_][A-Za-z0-9_]*/y;
const PLAIN_VALUE = /[A-Za-z0-9_.@+-]+/y;
const PLAIN_STRING = /^[A-Za-z_][A-Za-z0-9_.@+-]*$/;
const SMALL_INT = /^(0|[1-9][0-9]{0,14})$/;

function readSeedListInSlices(text: string, file: string, expand: ExpandContext, options: ReadOptions): SourceTree | undefined {
  if (text.includes('\r') || text.startsWith('\uFEFF')) return undefined;
  const lines = text.split('\n');
  let keyLine = -1;
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!;
    if (!DOUBTFUL_ROOT_LINE.test(line)) continue;
    if (keyLine >= 0 || !SEED_KEY_LINE.test(line)) return undefined;
    keyLine = i;
  }
  if (keyLine < 0) return undefined;
  // The list: from the key to the next root-level line; items start at one indent.
  let itemIndent = -1;
  let end = lines.length;
  const starts: number[] = [];
  for (let i = keyLine + 1; i < lines.length; i++) {
    const line = lines[i]!;
    const content = line.trimStart();
    if (content === '' || content.startsWith('#')) continue;
    if (/[\t&*]/.test(line)) return undefined;
    const indent = line.length - content.length;
    const dash = content === '-' || content.startsWith('- ');
    if (itemIndent < 0) {
      if (!dash) return undefined;
      itemIndent = indent;
    }
    if (indent === 0 && !(itemIndent === 0 && dash)) {
      end = i;
      break;
    }
    if (indent < itemIndent || (indent === itemIndent && !dash)) return undefined;
    if (indent === itemIndent) starts.push(i);
  }
  if (starts.length === 0) return undefined;

  // The rest of the file without the list's lines: `subscriptions:` is then null, and the
  // lines after the list are numbered as in the file (gap).
  const head = [...lines.slice(0, keyLine + 1), ...lines.slice(end)].join('\n');
  const tree = readWholeDocument(head, file, expand, options, { after: keyLine + 1, lines: end - keyLine - 1 });
  const root = tree.value;
  const keyPos = tree.locate([SEED_KEY], 'key');
  if (root === null || typeof root !== 'object' || Array.isArray(root) || !tree.has([SEED_KEY]) || (root as Record<string, unknown>)[SEED_KEY] !== null) return undefined;
  if (keyPos.line !== keyLine + 1 || keyPos.column !== 1) return undefined;

  const seqStart: SourcePosition = { file, line: starts[0]! + 1, column: itemIndent + 1 };
  tree.record([SEED_KEY], { key: keyPos, value: seqStart });
  const path = [SEED_KEY];
  // The seeds read so far, from index `listFrom`: all of them, or one slice at a time for onSeedSlice.
  let list: unknown[] = [];
  let listFrom = 0;
  const add = (k: number, seed: unknown): void => {
    list[k - listFrom] = seed;
    if (options.onSeedSlice && list.length >= SEED_SLICE) {
      options.onSeedSlice(listFrom, list, tree);
      list = [];
      listFrom = k + 1;
    }
  };
  const oneLine = new LineCounter();
  oneLine.addNewLine(0);
  const emptyDoc = parseDocument('');
  let pending: number[] = [];
  const flush = (): boolean => {
    if (pending.length === 0) return true;
    const from = pending[0]!;
    const to = pending.at(-1)! + 1 < starts.length ? starts[pending.at(-1)! + 1]! : end;
    const sliceLines = new LineCounter();
    const doc = parseDocument(lines.slice(starts[from]!, to).join('\n'), { lineCounter: sliceLines, uniqueKeys: false });
    if (doc.errors.length > 0 || !isSeq(doc.contents) || doc.contents.items.length !== pending.length) return false;
    const ctx: BuildContext = { tree, doc, lines: sliceLines, expand, options, targets: new Map(), lineOffset: starts[from]!, record: true };
    doc.contents.items.forEach((item, k) => add(from + k, buildItem(item as Node | null, path, from + k, seqStart, ctx, 1)));
    pending = [];
    return true;
  };
  // Simple seeds are built now and located later, from their lines, only if a problem needs it.
  const simple = new Set<number>();
  const simpleSeed = (k: number): { node: YAMLMap; lines: LineCounter } | undefined => {
    const nextStart = k + 1 < starts.length ? starts[k + 1]! : end;
    const itemLines = lines.slice(starts[k]!, nextStart);
    let content = itemLines.length;
    while (content > 1 && /^ *(#.*)?$/.test(itemLines[content - 1]!)) content--;
    if (content === 1) {
      const node = oneLineSeed(itemLines[0]!, itemIndent);
      return node && { node, lines: oneLine };
    }
    return blockSeed(itemLines.slice(0, content), itemIndent);
  };
  const simpleCtx = (k: number, counter: LineCounter, into: SourceTree, record: boolean, expanding: ExpandContext): BuildContext => ({
    tree: into,
    doc: emptyDoc,
    lines: counter,
    expand: expanding,
    options,
    targets: new Map(),
    lineOffset: starts[k]!,
    record,
  });
  tree.deferItems(SEED_KEY, (k) => {
    if (!simple.has(k)) return;
    // Built again on the side for its positions only: its problems and references were taken the first time.
    const side = new SourceTree(file, undefined);
    const seed = simpleSeed(k)!;
    buildItem(seed.node, path, k, seqStart, simpleCtx(k, seed.lines, side, true, { ...expand, referenced: new Set() }), 1);
    tree.adopt(side);
  });
  for (let k = 0; k < starts.length; k++) {
    const seed = simpleSeed(k);
    if (seed) {
      if (!flush()) return undefined;
      simple.add(k);
      add(k, buildItem(seed.node, path, k, seqStart, simpleCtx(k, seed.lines, tree, false, expand), 1));
      continue;
    }
    pending.push(k);
    if (pending.length >= SLICE_ITEMS && !flush()) return undefined;
  }
  if (!flush()) return undefined;
  if (options.onSeedSlice) {
    if (list.length > 0) options.onSeedSlice(listFrom, list, tree);
    tree.seedsInSlices = true;
    list = [];
  }
  (root as Record<string, unknown>)[SEED_KEY] = list;
  return tree;
}

/** `- { id: a, planId: gold, customer: { email: "a@example.com" } }` as the yaml library's nodes, or undefined for anything else. */
function oneLineSeed(line: string, indent: number): YAMLMap | undefined {
  let i = indent + 1;
  if (line[i] !== ' ') return undefined;
  while (line[i] === ' ') i++;
  const map = oneLineFlowMap(line, i);
  if (!map) return undefined;
  let j = map.end;
  while (line[j] === ' ') j++;
  // Only a comment may follow, and a comment needs a space before its `#`.
  return j === line.length || (line[j] === '#' && j > map.end) ? map.node : undefined;
}

/** A plain scalar the core schema reads as a string or a small whole number, or undefined. */
function simpleScalar(plain: string, start: number): Scalar | undefined {
  if (PLAIN_STRING.test(plain) && !CORE_NON_STRING.test(plain)) return scalarNode(plain, plain, start, start + plain.length);
  if (SMALL_INT.test(plain)) return scalarNode(Number(plain), plain, start, start + plain.length);
  return undefined;
}

/**
 * A seed written as a block mapping, one `key: value` per line with the same
 * simple values as the one-line form (or a one-line flow mapping), nested
 * mappings under `key:` indented further, as the yaml library's nodes; or
 * undefined for anything else (multi-line scalars, lists, empty values, ...).
 */
function blockSeed(itemLines: readonly string[], indent: number): { node: YAMLMap; lines: LineCounter } | undefined {
  const counter = new LineCounter();
  const bases: number[] = [];
  let offset = 0;
  for (const line of itemLines) {
    counter.addNewLine(offset);
    bases.push(offset);
    offset += line.length + 1;
  }
  const first = itemLines[0]!;
  let col = indent + 1;
  if (first[col] !== ' ') return undefined;
  while (first[col] === ' ') col++;
  const root = new YAMLMap();
  root.range = [col, offset, offset];
  const stack: Array<{ indent: number; map: YAMLMap }> = [{ indent: col, map: root }];
  let open: { indent: number; pair: Pair<Scalar, Node | null> } | undefined;
  for (let li = 0; li < itemLines.length; li++) {
    const line = itemLines[li]!;
    const base = bases[li]!;
    if (li > 0) {
      col = line.length - line.trimStart().length;
      if (open) {
        // `key:` with nothing after it and nothing indented under it is null: the yaml library's business.
        if (col <= open.indent) return undefined;
        const nested = new YAMLMap();
        nested.range = [base + col, offset, offset];
        open.pair.value = nested;
        stack.push({ indent: col, map: nested });
        open = undefined;
      } else {
        while (stack.length > 0 && col < stack.at(-1)!.indent) stack.pop();
        // A deeper line here would continue a plain scalar over lines.
        if (stack.length === 0 || col !== stack.at(-1)!.indent) return undefined;
      }
    }
    PLAIN_KEY.lastIndex = col;
    const key = PLAIN_KEY.exec(line)?.[0];
    if (key === undefined || CORE_NON_STRING.test(key) || line[col + key.length] !== ':') return undefined;
    const keyNode = scalarNode(key, key, base + col, base + col + key.length);
    let i = col + key.length + 1;
    const pair = new Pair<Scalar, Node | null>(keyNode, null);
    stack.at(-1)!.map.items.push(pair);
    const rest = line.slice(i);
    if (/^ *( #.*)?$/.test(rest)) {
      open = { indent: stack.at(-1)!.indent, pair };
      continue;
    }
    if (line[i] !== ' ') return undefined;
    while (line[i] === ' ') i++;
    const c = line[i];
    let end: number;
    if (c === '{') {
      const inner = oneLineFlowMap(line, i, base);
      if (!inner) return undefined;
      pair.value = inner.node;
      end = inner.end;
    } else if (c === '"' || c === "'") {
      const close = line.indexOf(c, i + 1);
      const body = close < 0 ? '' : line.slice(i + 1, close);
      if (close < 0 || (c === '"' && body.includes('\\')) || (c === "'" && line[close + 1] === "'")) return undefined;
      pair.value = scalarNode(body, body, base + i, base + close + 1);
      end = close + 1;
    } else {
      PLAIN_VALUE.lastIndex = i;
      const plain = PLAIN_VALUE.exec(line)?.[0];
      const scalar = plain === undefined ? undefined : simpleScalar(plain, base + i);
      if (!scalar) return undefined;
      pair.value = scalar;
      end = i + plain!.length;
    }
    // Only spaces, then perhaps a comment, may follow a value (a plain scalar would otherwise go on).
    if (!/^( *$| +#)/.test(line.slice(end))) return undefined;
  }
  return open ? undefined : { node: root, lines: counter };
}

function scalarNode(value: unknown, source: string, start: number, end: number): Scalar {
  const node = new Scalar(value);
  node.source = source;
  node.range = [start, end, end];
  return node;
}

function oneLineFlowMap(line: string, start: number, base = 0): { node: YAMLMap; end: number } | undefined {
  if (line[start] !== '{') return undefined;
  const map = new YAMLMap();
  let i = start + 1;
  const spaces = () => {
    while (line[i] === ' ') i++;
  };
  spaces();
  if (line[i] === '}') {
    map.range = [base + start, base + i + 1, base + i + 1];
    return { node: map, end: i + 1 };
  }
  for (;;) {
    PLAIN_KEY.lastIndex = i;
    const key = PLAIN_KEY.exec(line)?.[0];
    if (key === undefined || CORE_NON_STRING.test(key) || line[i + key.length] !== ':' || line[i + key.length + 1] !== ' ') return undefined;
    const keyNode = scalarNode(key, key, base + i, base + i + key.length);
    i += key.length + 2;
    spaces();
    let value: Node;
    const c = line[i];
    if (c === '{') {
      const inner = oneLineFlowMap(line, i, base);
      if (!inner) return undefined;
      value = inner.node;
      i = inner.end;
    } else if (c === '"' || c === "'") {
      const close = line.indexOf(c, i + 1);
      const body = close < 0 ? '' : line.slice(i + 1, close);
      // Escapes (and '' in single quotes) are the yaml library's business.
      if (close < 0 || (c === '"' && body.includes('\\')) || (c === "'" && line[close + 1] === "'")) return undefined;
      value = scalarNode(body, body, base + i, base + close + 1);
      i = close + 1;
    } else {
      PLAIN_VALUE.lastIndex = i;
      const plain = PLAIN_VALUE.exec(line)?.[0];
      if (plain === undefined) return undefined;
      const next = line[i + plain.length];
      if (next !== ' ' && next !== ',' && next !== '}') return undefined;
      const scalar = simpleScalar(plain, base + i);
      if (!scalar) return undefined;
      value = scalar;
      i += plain.length;
    }
    spaces();
    map.items.push(new Pair(keyNode, value));
    if (line[i] === ',') {
      i++;
      spaces();
      // A trailing comma, or an empty entry: the yaml library decides what it means.
      if (line[i] === '}' || line[i] === ',') return undefined;
      continue;
    }
    if (line[i] !== '}') return undefined;
    map.range = [base + start, base + i + 1, base + i + 1];
    return { node: map, end: i + 1 };
  }
}

/** Sections whose scalar settings `REBILL_<SECTION>_<KEY>` env vars may override. */
export const ENV_OVERRIDE_SECTIONS = ['database', 'http', 'scheduler', 'retry', 'logging'] as const;

const ENV_PREFIX = 'REBILL_';

/** REBILL_ variables that are not overrides but read by rebill itself. */
const ENV_NOT_OVERRIDES: ReadonlySet<string> = new Set(['REBILL_CONFIG']);

/** `RATE_PER_SECOND` -> `ratePerSecond`. */
function camelCase(upperSnake: string): string {
  return upperSnake.toLowerCase().replace(/_([a-z0-9])/g, (_, c: string) => c.toUpperCase());
}

/** `ratePerSecond` -> `RATE_PER_SECOND`. */
function upperSnake(camel: string): string {
  return camel.replace(/([a-z0-9])([A-Z])/g, '$1_$2').toUpperCase();
}

/** Both spellings of a key name the same setting: `LEASE_SECONDS` and `LEASESECONDS` are `leaseSeconds`. */
function envKeyOf(written: string, keys: readonly string[]): string {
  const folded = written.replace(/_/g, '').toLowerCase();
  return keys.find((key) => key.toLowerCase() === folded) ?? camelCase(written);
}

/** The keys of a section, for matching env spellings and suggesting names. */
export type SectionKeys = (section: (typeof ENV_OVERRIDE_SECTIONS)[number]) => readonly string[];

function unknownEnvWarning(name: string, keysOf: SectionKeys): string {
  const known = [...ENV_NOT_OVERRIDES, ...ENV_OVERRIDE_SECTIONS.flatMap((s) => keysOf(s).map((key) => `${ENV_PREFIX}${s.toUpperCase()}_${upperSnake(key)}`))];
  const meant = suggestKey(name, known);
  const hint = meant ? `did you mean ${meant}?` : `overrides are ${ENV_PREFIX}<SECTION>_<KEY> for the sections ${ENV_OVERRIDE_SECTIONS.join(', ')}`;
  return `environment variable ${name} is not a rebill setting and is ignored (${hint})`;
}

/**
 * Applies `REBILL_<SECTION>_<KEY>` overrides (`REBILL_HTTP_PORT=9090` ->
 * `http.port`), the twelve-factor way to vary one setting per deployment
 * without editing the file. The key may be written in snake case
 * (`REBILL_SCHEDULER_LEASE_SECONDS`) or as the key's letters in any case
 * (`REBILL_SCHEDULER_LEASESECONDS`). Only the daemon-setting sections are
 * eligible; a key the section does not have is caught by the schema and
 * reported against the variable's name. Any other REBILL_ variable that is
 * neither REBILL_CONFIG nor referenced through `${...}` (`referenced`) is
 * probably a misspelt override (`REBILL_DATABSE_URL`) and becomes a warning
 * on the tree. Values stay strings (numeric settings accept numeric strings);
 * a value starting with `[` or `{` is read as YAML flow, for list settings
 * such as `REBILL_RETRY_DELAYS=[P1D, P2D]`.
 */
export function applyEnvOverrides(
  tree: SourceTree,
  env: Readonly<Record<string, string | undefined>>,
  keysOf: SectionKeys = () => [],
  referenced: ReadonlySet<string> = new Set(),
): void {
  const root = tree.value;
  if (root === null || typeof root !== 'object' || Array.isArray(root)) return;
  const sections = root as Record<string, unknown>;
  const names = Object.keys(env)
    .filter((name) => name.startsWith(ENV_PREFIX) && env[name] !== undefined)
    .sort();
  for (const name of names) {
    if (ENV_NOT_OVERRIDES.has(name)) continue;
    const rest = name.slice(ENV_PREFIX.length);
    const section = ENV_OVERRIDE_SECTIONS.find((s) => rest.startsWith(`${s.toUpperCase()}_`) && rest.length > s.length + 1);
    if (!section) {
      if (!referenced.has(name)) tree.warnings.push(unknownEnvWarning(name, keysOf));
      continue;
    }
    const keys = keysOf(section);
    const key = envKeyOf(rest.slice(section.length + 1), keys);
    // `${REBILL_DATABASE_PASSWORD}` in the file is a reference, not an override of a setting that does not exist.
    if (referenced.has(name) && !keys.includes(key)) continue;
    const raw = env[name]!;
    const origin: SourcePosition = { file: `$${name}`, line: 0, column: 0 };
    let value: unknown = raw;
    if (/^\s*[[{]/.test(raw)) {
      try {
        value = parseYaml(raw);
      } catch (err) {
        tree.problems.push({ ...origin, path: formatPath([section, key]), message: `not valid YAML flow: ${(err as Error).message.split('\n')[0]}` });
        continue;
      }
    }
    const current = sections[section];
    if (current === undefined || current === null) {
      sections[section] = {};
      tree.record([section], { key: origin, value: origin });
    } else if (typeof current !== 'object' || Array.isArray(current)) {
      continue; // The schema reports the malformed section itself.
    }
    (sections[section] as Record<string, unknown>)[key] = value;
    tree.forgetBelow([section, key]);
    tree.record([section, key], { key: origin, value: origin });
  }
}
