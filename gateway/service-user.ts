// The user the gateway's systemd service runs as, for the commands run as root that prepare or check
// its files (presence doctor, presence corridor join): root reads every file, the service does not.
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { PACKAGE_ROOT } from '../scripts/package-root.ts';

/** The systemd unit as the field guide installs it, and the one the package ships (gateway/presence-gateway.service). */
const INSTALLED_UNIT = '/etc/systemd/system/presence-gateway.service';
const SHIPPED_UNIT = join(PACKAGE_ROOT, 'gateway', 'presence-gateway.service');

/**
 * The user the gateway's service runs as (User= of the installed unit, else of the shipped one) when
 * `config` is the file its ExecStart names (/etc/presence/gateway.yaml): only then does a file that
 * user cannot read stop the service. null: another file (a test, a copy being edited).
 */
export function serviceUserOf(config: string, units = [INSTALLED_UNIT, SHIPPED_UNIT]): string | null {
  for (const unit of units) {
    let text: string;
    try {
      text = readFileSync(unit, 'utf8');
    } catch {
      continue; // not installed here
    }
    const exec = /^ExecStart=.*\s--config\s+(\S+)/m.exec(text);
    const user = /^User=(\S+)\s*$/m.exec(text);
    return exec && user && resolve(exec[1]) === resolve(config) ? user[1] : null;
  }
  return null;
}

/** uid and gid of a user of this machine, or null when there is none of that name. */
export function userIds(user: string): { uid: number; gid: number } | null {
  const id = (flag: string) => {
    const r = spawnSync('id', [flag, user], { encoding: 'utf8' });
    return r.status === 0 ? Number(r.stdout.trim()) : Number.NaN;
  };
  const uid = id('-u');
  const gid = id('-g');
  return Number.isInteger(uid) && Number.isInteger(gid) ? { uid, gid } : null;
}
