/**
 * Item 7 of issue 8: an HTTP listener reachable from the network must carry
 * an admin token nobody else knows. The rule lives here, inside config
 * validation, so `check-config` and `run` refuse the same file at the same
 * line (SPEC section 4: check-config refuses what run refuses).
 */
import { isIP } from 'node:net';

/**
 * Tokens that are public knowledge: the shipped example config's fallback
 * (`${REBILL_ADMIN_TOKEN:-dev-admin-token}`). A listener on a non-loopback
 * address with one of these would hand write access to anyone on the network.
 * The one list of them: add here, never elsewhere.
 */
export const KNOWN_ADMIN_TOKENS: readonly string[] = ['dev-admin-token'];

/** How to fix a refused exposure, said once for both messages. */
const HOW_TO_FIX =
  'set REBILL_ADMIN_TOKEN to a secret (e.g. `openssl rand -hex 32`) and list it under http.tokens ({ token: "${REBILL_ADMIN_TOKEN}", scope: write }), or bind loopback only (http.host: 127.0.0.1, or REBILL_HTTP_HOST=127.0.0.1)';

/** True for addresses only this machine can reach: localhost, 127.0.0.0/8, ::1 (and its IPv4-mapped form). */
export function isLoopbackHost(host: string): boolean {
  const h = host.trim().toLowerCase().replace(/^\[(.*)\]$/, '$1');
  if (h === 'localhost' || h.endsWith('.localhost')) return true;
  if (isIP(h) === 4) return h.startsWith('127.');
  if (isIP(h) === 6) return h === '::1' || /^(0{0,4}:){7}0{0,3}1$/.test(h) || /^::ffff:127\./.test(h);
  return false;
}

/** One refusal: where (key path within the http section) and why; never the token itself. */
export interface ExposureProblem {
  readonly path: readonly (string | number)[];
  readonly message: string;
}

/** What the rule looks at. */
export interface ExposureInput {
  readonly host: string;
  /** false: the host is the default (no `http.host` in the file, no REBILL_HTTP_HOST). */
  readonly hostChosen: boolean;
  readonly tokens: readonly { readonly token: string }[];
}

/**
 * The refusals for an http section: none on a loopback host; otherwise one
 * per token everyone knows, and one when the host was chosen but no token is
 * configured.
 *
 * Why the default host with no token is not refused: every config written
 * before the listener existed has no `http:` section, and refusing them would
 * stop running daemons on upgrade. Without a token nobody can use the admin
 * API (SPEC section 9: 401 without a configured token), so such a listener
 * exposes only health, readiness and metrics, which monitoring on other hosts
 * needs. A known token on the network is refused however the host was set.
 */
export function exposureProblems(http: ExposureInput): ExposureProblem[] {
  if (isLoopbackHost(http.host)) return [];
  const where = `http.host is ${http.host}, reachable from the network`;
  if (http.tokens.length === 0 && http.hostChosen) {
    return [{ path: ['host'], message: `${where}, but no admin token is configured: ${HOW_TO_FIX}` }];
  }
  const problems: ExposureProblem[] = [];
  http.tokens.forEach((t, i) => {
    if (KNOWN_ADMIN_TOKENS.includes(t.token)) {
      problems.push({
        path: ['tokens', i, 'token'],
        message: `is a token everyone knows (the example config's fallback) while ${where}: anyone could use the admin API; ${HOW_TO_FIX}`,
      });
    }
  });
  return problems;
}
