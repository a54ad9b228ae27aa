/**
 * Concurrent calls with one key share the one pending promise; nothing is kept once it settles,
 * so the next call after that asks again (no cache: a change is seen by the next request).
 */
export function shareInFlight<V>(load: (key: string) => Promise<V>): (key: string) => Promise<V> {
  const pending = new Map<string, Promise<V>>();
  return (key) => {
    let promise = pending.get(key);
    if (!promise) {
      promise = load(key).finally(() => pending.delete(key));
      pending.set(key, promise);
    }
    return promise;
  };
}
