/**
 * Parent-process death (`npm start`): npm does not pass SIGTERM on to the
 * daemon, so `kill <npm's pid>` used to leave the daemon running as an
 * orphan. Linux sends no signal to the child when its parent dies, but the
 * child is re-parented (to init or a subreaper), so its `process.ppid`
 * changes: polling it is the portable way to notice. Started under init,
 * systemd or as a container's pid 1, the parent never changes and this never fires.
 */

/** Calls `onGone(previous, now)` once when this process's parent pid changes; returns a stop function. */
export function watchParent(onGone: (previousPpid: number, ppid: number) => void, intervalMs = 500): () => void {
  const initial = process.ppid;
  const timer = setInterval(() => {
    const now = process.ppid;
    if (now === initial) return;
    clearInterval(timer);
    onGone(initial, now);
  }, intervalMs);
  // Never the reason the process stays alive.
  timer.unref();
  return () => clearInterval(timer);
}
