/**
 * Applies a change made elsewhere (by the CLI or another instance) without a restart: every
 * `pollMs` `read()` is called, and a value that `changed()` says differs is handed to `apply()`.
 * One read at a time; a failed read is reported to `failed` and tried again at the next tick.
 * Returns `stop`, which waits for a read under way.
 */
export function watchForChange<T>(options: {
  pollMs: number;
  read(): Promise<T>;
  changed(value: T): boolean;
  apply(value: T): void;
  failed(error: unknown): void;
}): { stop(): Promise<void> } {
  let running: Promise<void> | undefined;
  const tick = (): Promise<void> => {
    running ??= options
      .read()
      .then((value) => {
        if (options.changed(value)) options.apply(value);
      })
      .catch((error: unknown) => options.failed(error))
      .finally(() => {
        running = undefined;
      });
    return running;
  };
  const timer = setInterval(() => void tick(), options.pollMs);
  timer.unref();
  return {
    async stop() {
      clearInterval(timer);
      await running;
    },
  };
}
