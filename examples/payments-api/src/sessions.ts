import type { Principal, TokenVerifier } from './tokens.ts';

// Long-lived connections (WebSocket, MQTT) authenticate once, so their token is watched: a
// session ends at the token's expiry, and an opaque token is introspected again every
// `recheckMs` so that a revocation ends the session too. One timer for all sessions.

type EndReason = 'expired' | 'revoked';

export type Session = {
  principal: Principal;
  readonly end: (reason: EndReason) => void;
};

export type SessionOptions = Readonly<{ now: () => number; sweepMs?: number; recheckMs?: number }>;

// guide:begin sessions
export function sessionWatch(verifier: TokenVerifier, options: SessionOptions) {
  const sessions = new Set<Session>();
  const checkedAt = new WeakMap<Session, number>();
  const recheckMs = options.recheckMs ?? 10_000;
  let sweeping = false;

  async function sweep() {
    if (sweeping) return;
    sweeping = true;
    try {
      const now = options.now();
      for (const session of [...sessions]) {
        if (session.principal.expiresAt <= now) {
          sessions.delete(session);
          session.end('expired');
        } else if (session.principal.format === 'opaque' && now - (checkedAt.get(session) ?? 0) >= recheckMs) {
          checkedAt.set(session, now);
          const principal = session.principal;
          if (!(await verifier.stillActive(principal)) && session.principal === principal && sessions.delete(session))
            session.end('revoked');
        }
      }
    } finally {
      sweeping = false;
    }
  }
  const timer = setInterval(() => void sweep(), options.sweepMs ?? 1_000);
  timer.unref();

  return {
    add(session: Session) {
      sessions.add(session);
      checkedAt.set(session, options.now());
    },
    remove: (session: Session) => sessions.delete(session),
    /** The session's token was replaced (a client re-authenticated on an open connection). */
    renew(session: Session, principal: Principal) {
      session.principal = principal;
      checkedAt.set(session, options.now());
    },
    close: () => clearInterval(timer),
  };
}
// guide:end sessions

export type SessionWatch = ReturnType<typeof sessionWatch>;
