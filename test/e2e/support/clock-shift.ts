/**
 * Drives test/e2e/support/clock-shift.mjs: the env that loads it into a
 * child `rebill` process, and the offset file a test writes to step the
 * child's wall clock.
 */
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const shim = path.join(path.dirname(fileURLToPath(import.meta.url)), 'clock-shift.mjs');

export interface ClockShift {
  /** Env for spawnRebill: loads the shim, pointed at this offset file. */
  readonly env: Record<string, string>;
  /** Steps the child's wall clock to real time + `ms` (0: back in line). */
  set(ms: number): void;
}

/** A clock shift whose offset file lives in `dir` (starts at 0). */
export function clockShift(dir: string): ClockShift {
  const file = path.join(dir, 'clock-offset');
  fs.writeFileSync(file, '0');
  return {
    env: { NODE_OPTIONS: `--import=${shim}`, CLOCK_SHIFT_FILE: file },
    set: (ms) => fs.writeFileSync(file, String(ms)),
  };
}
