/**
 * Bearer tokens of the admin API (SPEC section 9): `Authorization: Bearer <t>`
 * against the configured `http.tokens`, compared in constant time (SHA-256 of
 * both sides, so neither the length nor the first differing byte of a token
 * shows in the timing, and every configured token is compared). `write`
 * includes `read`. Unknown or missing -> 401, wrong scope -> 403; tokens never
 * appear in a response or a log line.
 */
import { createHash, timingSafeEqual } from 'node:crypto';

export type Scope = 'read' | 'write';

export interface TokenConfig {
  readonly token: string;
  readonly scope: Scope;
}

/** What a request's credentials allow. */
export type Authorization = { readonly kind: 'missing' } | { readonly kind: 'unknown' } | { readonly kind: 'granted'; readonly scope: Scope };

const digest = (text: string): Buffer => createHash('sha256').update(text, 'utf8').digest();

/** A checker for the configured tokens (digested once). */
export function tokenChecker(tokens: readonly TokenConfig[]): (header: string | undefined) => Authorization {
  const known = tokens.map((t) => ({ digest: digest(t.token), scope: t.scope }));
  return (header) => {
    const match = header === undefined ? null : /^Bearer[ \t]+([^\s]+)[ \t]*$/i.exec(header);
    if (!match) return { kind: 'missing' };
    const given = digest(match[1]!);
    let scope: Scope | undefined;
    for (const candidate of known) {
      // No early exit: the time does not depend on which token matched, or whether one did.
      if (timingSafeEqual(given, candidate.digest) && scope !== 'write') scope = candidate.scope;
    }
    return scope === undefined ? { kind: 'unknown' } : { kind: 'granted', scope };
  };
}

/** True when `granted` allows a route that needs `needed`. */
export function allows(granted: Scope, needed: Scope): boolean {
  return granted === 'write' || needed === 'read';
}
