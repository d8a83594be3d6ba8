/**
 * Engine observer: small callbacks through which the engine tells whoever
 * listens (the metrics module) what it did. The engine knows nothing of
 * prom-client or HTTP; it only calls these. Every callback is optional and
 * must be cheap: it runs inline on the dispatch path.
 */
import type { Logger } from 'pino';
import type { Outcome } from '../domain/index.js';

/** One gateway call is about to start. */
export interface GatewayCallStarted {
  readonly gateway: string;
  readonly kind: 'send' | 'status';
  /**
   * Seconds from the instant the work became due (the cycle's due instant, or
   * the retry's action instant) to this call's start. Sends only: null for
   * status queries and re-sends after a reconciliation.
   */
  readonly lagSeconds: number | null;
}

/** One gateway call finished (an answer or a failure). */
export interface GatewayCallFinished {
  readonly gateway: string;
  readonly kind: 'send' | 'status';
  /** What the gateway said: captured, declined, pending, not_found; unavailable for timeouts, 5xx and errors. */
  readonly outcome: Outcome['kind'];
  /** Duration of the gateway call alone (not the queue wait, not the recording). */
  readonly seconds: number;
}

/** One sweep finished. */
export interface SweepFinished {
  readonly seconds: number;
  readonly claimed: number;
  /** false: the sweep threw (the loop backs off). */
  readonly ok: boolean;
  /** true: the clock guard held the sweep (nothing was claimed, not counted as a sweep). */
  readonly held: boolean;
}

/** Cycles skipped by one transition (catch-up past a start date, a pause...). */
export interface CyclesSkipped {
  readonly reason: string;
  readonly count: number;
}

/** What the engine reports; all callbacks optional. */
export interface EngineObserver {
  gatewayCallStarted?(event: GatewayCallStarted): void;
  attemptFinished?(event: GatewayCallFinished): void;
  sweepFinished?(event: SweepFinished): void;
  cyclesSkipped?(event: CyclesSkipped): void;
}

/**
 * Wraps an observer so that a callback that throws never breaks collection:
 * the error is logged once per callback (the first time, with its stack) and
 * ignored afterwards. Without an observer every call is a no-op.
 */
export function safeObserver(observer: EngineObserver | undefined, logger: Logger): Required<EngineObserver> {
  const failed = new Set<string>();
  const wrap =
    <E>(name: keyof EngineObserver) =>
    (event: E): void => {
      const callback = observer?.[name] as ((event: E) => void) | undefined;
      if (!callback) return;
      try {
        callback.call(observer, event);
      } catch (err) {
        if (failed.has(name)) return;
        failed.add(name);
        logger.error({ err, callback: name }, 'engine observer failed; ignoring its errors from now on (collection goes on)');
      }
    };
  return {
    gatewayCallStarted: wrap<GatewayCallStarted>('gatewayCallStarted'),
    attemptFinished: wrap<GatewayCallFinished>('attemptFinished'),
    sweepFinished: wrap<SweepFinished>('sweepFinished'),
    cyclesSkipped: wrap<CyclesSkipped>('cyclesSkipped'),
  };
}
