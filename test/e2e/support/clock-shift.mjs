/**
 * A wall-clock step for a real daemon process, loaded with
 * `NODE_OPTIONS=--import=<this file>`: Date.now() returns the real time plus the
 * number of milliseconds written in the file named by $CLOCK_SHIFT_FILE
 * (re-read at most every 50 ms of elapsed time). performance.now() and timers
 * are left alone, as a stepped system clock leaves the monotonic clock alone.
 */
import fs from 'node:fs';

const file = process.env.CLOCK_SHIFT_FILE;
if (file) {
  const realNow = Date.now.bind(Date);
  let offset = 0;
  let readAt = -Infinity;
  Date.now = () => {
    const t = performance.now();
    if (t - readAt >= 50) {
      readAt = t;
      try {
        offset = Number(fs.readFileSync(file, 'utf8').trim()) || 0;
      } catch {
        offset = 0;
      }
    }
    return realNow() + offset;
  };
}
