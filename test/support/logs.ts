// A server's output, kept for assertions, with a way to wait for a line: tests wait for the
// event they need (a log line) instead of polling on a timer.

export type LogWatch = Readonly<{
  /** Everything written so far. */
  text(): string;
  /** The JSON lines written so far, parsed. */
  lines(): Record<string, any>[];
  /**
   * Resolves at the first line matching `pattern` written after this call, or from `since`
   * (an offset in `text()`, taken before the action that causes the line).
   */
  next(pattern: RegExp, options?: { since?: number; timeoutMs?: number }): Promise<string>;
  /**
   * Resolves once `check` holds, checked now and as each chunk of output arrives. Rejects with
   * the output after `timeoutMs`: a bound for a broken test, not a wait for a healthy one.
   */
  until<T>(check: () => T | undefined | false, timeoutMs?: number): Promise<T>;
  /** Feed output in. */
  write(chunk: string): void;
}>;

export function logWatch(): LogWatch {
  let output = '';
  const waiting = new Set<() => void>();
  const lines = () =>
    output
      .split('\n')
      .filter((line) => line.startsWith('{'))
      .map((line) => JSON.parse(line) as Record<string, any>);
  const until = <T>(check: () => T | undefined | false, timeoutMs = 15_000): Promise<T> => {
    const now = check();
    if (now) return Promise.resolve(now);
    return new Promise((resolve, reject) => {
      const waiter = () => {
        const value = check();
        if (!value) return;
        waiting.delete(waiter);
        clearTimeout(timer);
        resolve(value);
      };
      const timer = setTimeout(() => {
        waiting.delete(waiter);
        reject(new Error(`the awaited log output did not come within ${timeoutMs} ms:\n${output.slice(-3000)}`));
      }, timeoutMs);
      waiting.add(waiter);
    });
  };
  return {
    text: () => output,
    lines,
    write(chunk) {
      output += chunk;
      for (const waiter of waiting) waiter();
    },
    until,
    next(pattern, { since = output.length, timeoutMs } = {}) {
      // only whole lines: a chunk may end inside one
      return until(
        () =>
          output
            .slice(since)
            .split('\n')
            .slice(0, -1)
            .find((line) => pattern.test(line)),
        timeoutMs,
      );
    },
  };
}
