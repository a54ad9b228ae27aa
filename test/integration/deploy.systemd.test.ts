import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { ROOT, tempDir } from '../support/harness.ts';

// `systemd-analyze verify` on deploy/systemd/portcullis.service, with /opt/portcullis pointed at
// this checkout (verify checks that ExecStart's binary exists). It reads the unit offline: no
// running systemd is needed. Where the tool is missing, the test says so and skips.

const ANALYZE = ['/usr/bin/systemd-analyze', '/bin/systemd-analyze'].find((file) => fs.existsSync(file));
const check = ANALYZE ? test : test.skip;

check(
  `systemd-analyze verify accepts the unit: no unknown key, no bad value${ANALYZE ? '' : ' (skipped: systemd-analyze is not installed)'}`,
  () => {
    const dir = tempDir('portcullis-unit-');
    const unit = path.join(dir, 'portcullis.service');
    fs.writeFileSync(
      unit,
      fs.readFileSync(path.join(ROOT, 'deploy/systemd/portcullis.service'), 'utf8').replaceAll('/opt/portcullis', ROOT.replace(/\/$/, '')),
    );
    // it exits 0 on an unknown key ("Unknown key …, ignoring"): its messages are failures too
    const run = spawnSync(ANALYZE!, ['verify', unit], { encoding: 'utf8' });
    const output = `${run.stdout}${run.stderr}`;
    expect([run.status, output]).toEqual([0, '']);
  },
);
