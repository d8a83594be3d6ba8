// Preloaded (`node --import`) into every process the bench spawns: as the
// process exits it writes its peak resident set size in kB (VmHWM from
// /proc/self/status, getrusage's maxRSS where there is no /proc) to
// $BENCH_PEAK_RSS_FILE. Read at exit, it covers the whole life of the process,
// including a short-lived CLI command that a sampler from outside could miss.
import { readFileSync, writeFileSync } from 'node:fs';

const file = process.env.BENCH_PEAK_RSS_FILE;
if (file) {
  process.on('exit', () => {
    let kb;
    try {
      kb = Number(/VmHWM:\s+(\d+) kB/.exec(readFileSync('/proc/self/status', 'utf8'))?.[1]);
    } catch {
      kb = NaN;
    }
    if (!Number.isFinite(kb)) kb = process.resourceUsage().maxRSS;
    writeFileSync(file, String(kb));
  });
}
