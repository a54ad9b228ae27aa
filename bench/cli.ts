import { runCli } from '../src/cli/cli.ts';

/** `portcullis ARGV…` in this process against the database in `env`; its JSON output, or the error it printed. */
export async function cliJson(env: Record<string, string>, argv: string[], stdin?: string) {
  let out = '';
  let err = '';
  const code = await runCli(
    argv,
    {
      stdout: (t) => {
        out += t;
      },
      stderr: (t) => {
        err += t;
      },
      stdin: () => Promise.resolve(stdin ?? ''),
    },
    env,
  );
  if (code !== 0) throw new Error(err);
  return JSON.parse(out);
}
