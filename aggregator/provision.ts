// `presence provision gateway`: sets up one gateway's identity in one step.
//
//   1. its broker credential: user name "{site}/{gateway}" with a fresh random password, added to a
//      Mosquitto password_file as a mosquitto_passwd-compatible entry (PBKDF2-SHA512, "$7$" format)
//   2. the ACL: the patterns of docs/mosquitto/presence.acl bind that user name to the gateway's own
//      topics; they are added to the acl_file when it lacks them (one file serves every gateway).
//      With --homeassistant also a `user {site}/{gateway}` entry that may write the gateway's own
//      Home Assistant discovery configs ({prefix}/sensor/presence_{site}_{gateway}/+/config, each _
//      of the site doubled: haNodeId): a
//      pattern cannot say that (%u holds a "/"), so the grant is per gateway
//   3. its registry entry (site, zone, credential) in the aggregator's config file
//   4. the password, in a file of its own (mode 0600) to copy to the gateway
//
// The password is never printed or logged: stdout says which files changed and what the gateway
// needs (its settings, the path of the password file). Files are replaced atomically (a temporary
// file in the same folder, then rename), keeping the mode and owner of the file they replace.
// Runs at once take turns: each holds {file}.lock beside every file it edits (lockFiles).
import { exitUsage } from '../scripts/lib/usage.ts';
import { spawnSync } from 'node:child_process';
import { randomBytes, pbkdf2Sync } from 'node:crypto';
import { closeSync, existsSync, openSync, readFileSync, rmSync, statSync, writeSync } from 'node:fs';
import { FileWriteError, fileWriteProblem, isDiskFull, writeFileAtomic } from '../scripts/lib/atomic-file.ts';
import { makeFolders } from '../scripts/lib/folders.ts';
import { readSmallFile } from '../scripts/lib/small-file.ts';
import { MAX_CONFIG_BYTES } from '../scripts/lib/config-loader.ts';
import { pathCredentialsProblem, redactedLine } from '../scripts/lib/secrets.ts';
import { dirname, resolve } from 'node:path';
import type { Command } from 'commander';
import * as YAML from 'yaml';
import { Document, isMap } from 'yaml';
import { parseJson, parseYamlDocument, syntaxProblem } from '../scripts/lib/yaml-doc.ts';
import { ALIVE_FILTER, aliveTopic, isValidId, TOPIC_ROOT } from '../contract/index.ts';
import { HA_DEFAULT_PREFIX, HA_PREFIX_PATTERN, haConfigFilter } from '../contract/homeassistant.ts';
import { checkConfigObject } from './config.ts';
import { processAlive } from '../scripts/lib/process-alive.ts';

/**
 * The gateway lines of docs/mosquitto/presence.acl: each gateway publishes its own topics only, and
 * reads its own status (presence doctor checks the retained status first, so it never test-publishes
 * an offline status for a running gateway).
 */
export const ACL_PATTERNS = [
  `pattern write ${TOPIC_ROOT}/%u/counts`,
  `pattern write ${TOPIC_ROOT}/%u/status`,
  `pattern write ${TOPIC_ROOT}/%u/sketch`,
  `pattern read ${TOPIC_ROOT}/%u/status`,
];
/** Mosquitto 2's default for mosquitto_passwd (PW_DEFAULT_ITERATIONS). */
const PBKDF2_ITERATIONS = 101;

export class ProvisionError extends Error {
  constructor(
    message: string,
    readonly hint?: string,
  ) {
    super(message);
  }
}

/** A broker password file or ACL is read whole: at most this big (about 400,000 gateways' entries). */
const MAX_LIST_BYTES = 64 * 2 ** 20;

/**
 * The text of a file provision edits, '' when it does not exist yet. Read before anything is
 * written; a folder, a fifo, a device or a file above maxBytes is refused, naming the flag.
 */
function readEdited(path: string, flag: string, maxBytes: number): string {
  if (!existsSync(path)) {
    folderMustExist(path, flag);
    return '';
  }
  try {
    return readSmallFile(path, maxBytes);
  } catch (e) {
    throw new ProvisionError(`${flag} ${path}: ${(e as Error).message}`);
  }
}

/** A file that does not exist yet is created, but not its folder: a folder that is not there is a
 *  mistyped path (/etc/mosquito/passwd), and a file made there would be read by nobody. */
function folderMustExist(path: string, flag: string): void {
  const dir = dirname(resolve(path));
  if (!existsSync(dir))
    throw new ProvisionError(`${flag} ${path}: the folder ${dir} does not exist; check the path (a new file is created, its folder is not)`);
}

/** The broker user name of a gateway: site and gateway, bound to presence/v1/%u/... by the ACL. */
export function credentialName(site: string, gateway: string): string {
  return `${site}/${gateway}`;
}

/** One password_file line as `mosquitto_passwd` (Mosquitto 2) writes it: user:$7$iterations$salt$hash. */
export function mosquittoPasswordEntry(user: string, password: string, salt = randomBytes(12), iterations = PBKDF2_ITERATIONS): string {
  const hash = pbkdf2Sync(password, salt, iterations, 64, 'sha512');
  return `${user}:$7$${iterations}$${salt.toString('base64')}$${hash.toString('base64')}`;
}

/** Checks a password against a password_file entry ($7$ only). */
export function verifyPasswordEntry(entry: string, password: string): boolean {
  const m = /^[^:]+:\$7\$(\d+)\$([^$]+)\$([^$]+)$/.exec(entry.trim());
  if (!m) return false;
  return pbkdf2Sync(password, Buffer.from(m[2], 'base64'), Number(m[1]), 64, 'sha512').toString('base64') === m[3];
}

/**
 * The files one run replaces, with what they held before: a file that cannot be written (a folder
 * this user may not write, a full disk) puts back the ones already replaced, so a failed run changes
 * nothing (the gateway's password file was left behind, and the next run refused it as existing).
 */
class Changes {
  private readonly before: Array<{ path: string; text: Buffer | null; mode: number; owner?: { uid: number; gid: number } }> = [];

  /**
   * Writes `text` to `path` atomically (scripts/lib/atomic-file.ts), with the mode (and, as root,
   * owner) of the file it replaces or `mode`; `secret`: always `mode`, from the first byte on. A
   * failure is a ProvisionError naming `flag`, the path and why, after the earlier files were put back.
   */
  replace(flag: string, path: string, text: string, mode: number, secret = false, newOwner?: { uid: number; gid: number }): void {
    try {
      makeFolders(dirname(path));
      const old = existsSync(path) ? statSync(path) : null;
      // (read below to be put back: a fifo would block the read, a folder cannot be replaced)
      if (old && !old.isFile()) throw fileWriteProblem(path, { code: old.isDirectory() ? 'EISDIR' : 'ENOTREG' });
      const owner = process.getuid?.() === 0 ? (old ? { uid: old.uid, gid: old.gid } : newOwner) : undefined;
      const previous = old ? readFileSync(path) : null;
      writeFileAtomic(path, text, { mode: old && !secret ? old.mode & 0o777 : mode, owner });
      this.before.push({ path, text: previous, mode: old ? old.mode & 0o777 : mode, owner });
    } catch (e) {
      const undone = this.undo();
      const why = e instanceof FileWriteError ? e.message : `${path}: ${(e as Error).message}`;
      throw new ProvisionError(
        `${flag} ${why}${undone ? `; ${undone}` : '; nothing was changed'}`,
        isDiskFull(e) ? `df -h ${dirname(path)} shows the space left there` : 'check the paths given and that this user may write them (sudo)',
      );
    }
  }

  /** Puts back every file replaced so far, the last first; says what could not be. */
  private undo(): string {
    const failed: string[] = [];
    for (const b of this.before.reverse()) {
      try {
        if (b.text === null) rmSync(b.path, { force: true });
        else writeFileAtomic(b.path, b.text, { mode: b.mode, owner: b.owner });
      } catch {
        failed.push(b.path);
      }
    }
    this.before.length = 0;
    return failed.length ? `could not put back ${failed.join(', ')} as they were` : '';
  }
}

/** uid and gid of the user Mosquitto runs as (Debian's package: mosquitto), or undefined where there is none. */
function mosquittoUser(): { uid: number; gid: number } | undefined {
  const id = (flag: string) => spawnSync('id', [flag, 'mosquitto'], { encoding: 'utf8' });
  const [u, g] = [id('-u'), id('-g')];
  return u.status === 0 && g.status === 0 ? { uid: Number(u.stdout.trim()), gid: Number(g.stdout.trim()) } : undefined;
}

export interface ProvisionOptions {
  site: string;
  zone: string;
  id: string;
  /** Mosquitto password_file (created when absent; its folder must exist). */
  passwordFile?: string;
  /** Mosquitto acl_file: the presence patterns are added when missing (created from the recipe when absent). */
  aclFile?: string;
  /** The aggregator's config file (YAML or JSON; created when absent; its folder must exist). */
  aggregatorConfig?: string;
  /** Where the gateway's password goes (mode 0600). Default ./{site}-{id}.mqtt-password. */
  secretOut?: string;
  /** Replace an existing credential (new password) and registry entry. */
  rotate?: boolean;
  /** Let the gateway write its Home Assistant discovery configs (in aclFile); a string is the discovery prefix. */
  homeassistant?: boolean | string;
}

export interface ProvisionResult {
  credential: string;
  secretFile: string | null;
  changed: string[];
  /** Lines of the ACL that grant this gateway's user more than its own topics (aclGrantsBeyondOwn). */
  warnings: string[];
}

/** An MQTT topic filter of an ACL line as a regular expression over topics: `+` one level, a final
 *  `#` any levels (and the parent), `%u` the user name, `%c` the client id (the client picks it,
 *  slashes and all: any text). */
function aclFilterRegExp(filter: string, user: string): RegExp {
  const esc = (t: string) => t.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  const levels = filter.split('/');
  const hash = levels[levels.length - 1] === '#';
  const body = (hash ? levels.slice(0, -1) : levels)
    .map((l) =>
      l === '+'
        ? '[^/]*'
        : l
            .split(/(%u|%c)/)
            .map((part) => (part === '%u' ? esc(user) : part === '%c' ? '.*' : esc(part)))
            .join(''),
    )
    .join('/');
  return new RegExp(`^${hash ? (body ? `${body}(?:/.*)?` : '.*') : body}$`);
}

/**
 * Lines of a Mosquitto ACL that let the gateway user `user` ("{site}/{gateway}") publish as another
 * gateway (its counts, status or sketch), as an aggregator (the corridor alive topic, which decides
 * who computes a group's flows), or read another gateway's sketches (with its group's secret a
 * gateway could then link its own sketches with theirs): every `pattern` line (patterns apply to
 * every user) and every `topic` line under `user USER`. Deny lines and lines for other users are not
 * judged. One sentence per line found.
 */
export function aclGrantsBeyondOwn(text: string, user: string): string[] {
  const [site, id] = user.split('/');
  const others = [`${site}/${id}-other`, `${site}-other/${id}`];
  const kinds = ['counts', 'status', 'sketch'];
  const aliveProbe = aliveTopic('other');
  const writeProbes = [...others.flatMap((o) => kinds.map((k) => `${TOPIC_ROOT}/${o}/${k}`)), aliveProbe];
  const readProbes = others.map((o) => `${TOPIC_ROOT}/${o}/sketch`);
  const out: string[] = [];
  let section: string | null = null;
  text.split('\n').forEach((raw, i) => {
    const line = raw.replace(/\r$/, '').trim();
    const u = /^user\s+(.+)$/.exec(line);
    if (u) {
      section = u[1].trim();
      return;
    }
    const m = /^(topic|pattern)\s+(?:(read|write|readwrite|deny)\s+)?(\S.*)$/.exec(line);
    if (!m || m[2] === 'deny' || (m[1] === 'topic' && section !== user)) return;
    const access = m[2] ?? 'readwrite';
    const filter = m[3].trim();
    const re = aclFilterRegExp(filter, user);
    const wrote = access !== 'read' ? writeProbes.find((t) => re.test(t)) : undefined;
    const read = access !== 'write' ? readProbes.find((t) => re.test(t)) : undefined;
    if (!wrote && !read) return;
    const whom = m[1] === 'pattern' ? 'every user, this gateway too,' : `user ${user}`;
    const what =
      wrote === aliveProbe
        ? `publish as an aggregator (${wrote}), taking over corridor groups`
        : wrote
          ? `publish as another gateway (e.g. ${wrote})`
          : `read other gateways' sketches (e.g. ${read})`;
    out.push(`ACL line ${i + 1} "${line}" lets ${whom} ${what}: its credential is then not bound to its own topics; remove or narrow that line`);
  });
  return out;
}

/** Adds the gateway's credential, ACL patterns and registry entry. Throws ProvisionError naming what is wrong. */
export function provisionGateway(o: ProvisionOptions): ProvisionResult {
  for (const [what, v] of [
    ['--site', o.site],
    ['--zone', o.zone],
    ['--id', o.id],
  ] as const)
    if (!v || !isValidId(v))
      throw new ProvisionError(
        `${what}: must be lower case letters, digits, - and _ (1 to 63, starting with a letter or digit) (got ${JSON.stringify(v ?? '')})`,
      );
  // A URL with credentials pasted as a path: a file so named, and the report naming it, would show them.
  for (const [flag, path] of [
    ['--password-file', o.passwordFile],
    ['--acl-file', o.aclFile],
    ['--aggregator-config', o.aggregatorConfig],
    ['--secret-out', o.secretOut],
  ] as const) {
    const problem = path === undefined ? undefined : pathCredentialsProblem(flag, path);
    if (problem) throw new ProvisionError(problem);
  }
  if (!o.passwordFile && !o.aggregatorConfig)
    throw new ProvisionError('nothing to do: give --password-file (the broker credential) and/or --aggregator-config (the registry entry)');
  const user = credentialName(o.site, o.id);
  const haPrefix = o.homeassistant === undefined || o.homeassistant === false ? null : o.homeassistant === true ? HA_DEFAULT_PREFIX : o.homeassistant;
  if (haPrefix !== null && !o.aclFile) throw new ProvisionError('--homeassistant: grants the discovery topics in the ACL; give --acl-file too');
  if (haPrefix !== null && !new RegExp(HA_PREFIX_PATTERN).test(haPrefix))
    throw new ProvisionError(`--homeassistant: the discovery prefix must be one topic level of letters, digits, _ and - (got ${JSON.stringify(haPrefix)})`);
  const release = lockFiles([o.passwordFile, o.aclFile, o.aggregatorConfig]);
  try {
    return provisionLocked(o, user, haPrefix);
  } finally {
    release();
  }
}

/** How long a run waits for another run's lock on the same files before it gives up. */
export const LOCK_WAIT_MS = 15_000;

/**
 * Takes `{file}.lock` (holding this process's id) for each file given, in one order, waiting for
 * another run that holds one: provision reads a file, adds its entry and writes the file back, so
 * two runs at once (a script provisioning gateways in parallel) each wrote the file without the
 * other's entry, and both said they had added theirs. A lock whose process is gone (a run killed
 * midway) is taken over. Where no lock can be made (a folder that is missing or not writable) the
 * run goes on without it: reading or writing the file then fails with its own reason. Returns the
 * function that removes the locks taken.
 */
export function lockFiles(paths: Array<string | undefined>): () => void {
  const locks = [...new Set(paths.filter((p): p is string => p !== undefined).map((p) => `${resolve(p)}.lock`))].sort();
  const held: string[] = [];
  const release = () => {
    for (const l of held.reverse()) rmSync(l, { force: true });
    held.length = 0;
  };
  const sleep = new Int32Array(new SharedArrayBuffer(4));
  try {
    for (const lock of locks) {
      const deadline = Date.now() + LOCK_WAIT_MS;
      for (;;) {
        let fd: number;
        try {
          fd = openSync(lock, 'wx', 0o600);
        } catch (e) {
          if ((e as NodeJS.ErrnoException).code !== 'EEXIST') break;
          const pid = Number.parseInt(readLockPid(lock), 10);
          if (pid > 0 && !processAlive(pid)) {
            rmSync(lock, { force: true });
            continue;
          }
          if (Date.now() > deadline)
            throw new ProvisionError(
              `${lock} is held by ${pid > 0 ? `process ${pid}` : 'another run'} (presence provision editing the same file); waited ${LOCK_WAIT_MS / 1000} s`,
              'wait for that run to end, or delete the lock file if no presence provision is running',
            );
          Atomics.wait(sleep, 0, 0, 20 + Math.floor(Math.random() * 30));
          continue;
        }
        held.push(lock);
        writeSync(fd, `${process.pid}\n`);
        closeSync(fd);
        break;
      }
    }
  } catch (e) {
    release();
    throw e;
  }
  return release;
}

function readLockPid(lock: string): string {
  try {
    return readFileSync(lock, 'utf8');
  } catch {
    return '';
  }
}

/** provisionGateway once its options are checked and the files locked. */
function provisionLocked(o: ProvisionOptions, user: string, haPrefix: string | null): ProvisionResult {
  const changed: string[] = [];

  // Read and check everything first, so a refusal changes no file.
  let passwdLines: string[] = [];
  let passwordFileMode: number | null = null;
  if (o.passwordFile) {
    const text = readEdited(o.passwordFile, '--password-file', MAX_LIST_BYTES);
    passwordFileMode = existsSync(o.passwordFile) ? statSync(o.passwordFile).mode & 0o777 : null;
    // Only a password file is rewritten: another file named by mistake (mosquitto.conf, the ACL, a
    // certificate) would lose its form and its mode (0600). Mosquitto reads user:password-or-hash
    // lines and skips # comments, which are kept.
    text.split('\n').forEach((l, i) => {
      if (l.trim() === '' || l.startsWith('#') || /^[^:]+:[^:\s]/.test(l.replace(/\r$/, ''))) return;
      throw new ProvisionError(
        `${o.passwordFile} line ${i + 1}: not a Mosquitto password entry (user:hash); --password-file must name the broker's password_file (its setting in mosquitto.conf), which is created when absent`,
      );
    });
    passwdLines = text.split('\n').filter((l) => l.trim() !== '');
    if (passwdLines.some((l) => l.startsWith(`${user}:`)) && !o.rotate)
      throw new ProvisionError(`${o.passwordFile}: ${user} has a credential already; --rotate gives it a new password`);
  }
  let doc: Document | null = null;
  let json: Record<string, unknown> | null = null;
  let registryPath: string[] = [];
  const cfgFile = o.aggregatorConfig;
  if (cfgFile) {
    const text = readEdited(cfgFile, '--aggregator-config', MAX_CONFIG_BYTES);
    if (/\.json$/i.test(cfgFile)) {
      try {
        json = (text.trim() ? parseJson(YAML, text) : { aggregator: {} }) as Record<string, unknown>;
      } catch (e) {
        throw new ProvisionError(`${cfgFile}: not valid JSON: ${syntaxProblem(e, text, true)}`);
      }
      if (!json || typeof json !== 'object' || Array.isArray(json)) throw new ProvisionError(`${cfgFile}: the top level must be a mapping`);
    } else {
      // A new file in block style (a parsed `{}` would be flow style, and so all added under it).
      doc = text.trim() ? parseYamlDocument(YAML, text) : new Document({ aggregator: {} });
      if (doc.errors.length) throw new ProvisionError(`${cfgFile}: not valid YAML: ${syntaxProblem(doc.errors[0], text, false)}`);
      if (!isMap(doc.contents)) throw new ProvisionError(`${cfgFile}: the top level must be a mapping`);
    }
    const top = json ?? (doc!.toJS() as Record<string, unknown> | null) ?? {};
    const nested = top.aggregator && typeof top.aggregator === 'object';
    registryPath = [...(nested ? ['aggregator'] : []), 'gateways', 'registry'];
    const section = (nested ? top.aggregator : top) as Record<string, any>;
    // The file as it is first: an entry cannot be added to a registry that is no mapping (`gateways: x`
    // crashed here with a TypeError; `registry: abc` was reported as registry[0], [1], [2]).
    const before = checkConfigObject(section ?? {}, nested ? 'aggregator.' : '');
    if (before.length) throw new ProvisionError(`${cfgFile} is not a valid aggregator config (fix it, then provision again):\n  ${before.join('\n  ')}`);
    const existing = section?.gateways?.registry?.[o.id];
    if (existing && (existing.site !== o.site || existing.zone !== o.zone) && !o.rotate)
      throw new ProvisionError(`${cfgFile}: gateway ${o.id} is registered for site ${existing.site}, zone ${existing.zone}; --rotate moves it`);
    // The file must stay valid for the aggregator.
    const after = structuredClone(section ?? {});
    after.gateways ??= {};
    after.gateways.registry = { ...(after.gateways.registry ?? {}), [o.id]: { site: o.site, zone: o.zone, credential: user } };
    const problems = checkConfigObject(after, nested ? 'aggregator.' : '');
    if (problems.length) throw new ProvisionError(`${cfgFile} would not be a valid aggregator config:\n  ${problems.join('\n  ')}`);
  }

  const aclText = o.aclFile ? readEdited(o.aclFile, '--acl-file', MAX_LIST_BYTES) : '';
  // Only an ACL is added to: another file named by mistake (mosquitto.conf, the password file, the
  // broker's persistence file mosquitto.db, whose bytes were rewritten as text) would no longer load.
  // Mosquitto reads user, topic and pattern lines and skips # comments and blank lines.
  aclText.split('\n').forEach((l, i) => {
    const line = l.replace(/\r$/, '').trim();
    if (line === '' || line.startsWith('#') || /^(user|topic|pattern)\s+\S/.test(line)) return;
    throw new ProvisionError(
      `${o.aclFile} line ${i + 1}: not a Mosquitto ACL line (user, topic or pattern); --acl-file must name the broker's acl_file (its setting in mosquitto.conf), which is created when absent`,
    );
  });

  const changes = new Changes();
  let secretFile: string | null = null;
  if (o.passwordFile) {
    const password = randomBytes(24).toString('base64url');
    secretFile = resolve(o.secretOut ?? `${o.site}-${o.id}.mqtt-password`);
    // The secret first: exclusive create, 0600 (or a replacement, when rotating).
    if (existsSync(secretFile) && !o.rotate) throw new ProvisionError(`${secretFile} exists; --rotate replaces it, or choose --secret-out`);
    folderMustExist(secretFile, '--secret-out');
    changes.replace('--secret-out', secretFile, `${password}\n`, 0o600, true);
    changed.push(`${secretFile} (the gateway's password, mode 0600)`);
    const lines = passwdLines.filter((l) => !l.startsWith(`${user}:`));
    lines.push(mosquittoPasswordEntry(user, password));
    // A new password file, made as root: Mosquitto reads it as its own user (Debian's service starts
    // as root and switches to `mosquitto` first), so it belongs to that user, mode 0600, as
    // Mosquitto asks of it. Owned by root, the broker stopped at start: Unable to open pwfile.
    const broker = existsSync(o.passwordFile) ? undefined : mosquittoUser();
    changes.replace('--password-file', o.passwordFile, lines.join('\n') + '\n', 0o600, false, broker);
    changed.push(`${o.passwordFile} (credential ${user}${broker && process.getuid?.() === 0 ? '; a new file, owned by mosquitto, which reads it' : ''})`);
  }
  if (o.aclFile) {
    const text = aclText;
    const have = new Set(text.split('\n').map((l) => l.trim().replace(/\s+/g, ' ')));
    const missing = ACL_PATTERNS.filter((p) => !have.has(p));
    const haGrant = haPrefix === null ? null : `topic write ${haConfigFilter(haPrefix, o.site, o.id)}`;
    const addHa = haGrant !== null && !have.has(haGrant);
    if (missing.length || addHa) {
      let next = text ? (text.endsWith('\n') ? text : `${text}\n`) : `user aggregator\ntopic read ${TOPIC_ROOT}/#\ntopic write ${ALIVE_FILTER}\n`;
      if (missing.length) next += `\n# presence-counter gateways: user name "{site}/{gateway}", its own topics only\n${missing.join('\n')}\n`;
      // Topic lines belong to the user line above them; patterns apply to every user wherever they stand.
      if (addHa) next += `\n# Home Assistant discovery configs of gateway ${user} (homeassistant.enabled)\nuser ${user}\n${haGrant}\n`;
      changes.replace('--acl-file', o.aclFile, next, 0o644);
      if (missing.length) changed.push(`${o.aclFile} (patterns ${missing.join(', ')})`);
      if (addHa) changed.push(`${o.aclFile} (${user}: ${haGrant})`);
    }
  }
  if (cfgFile) {
    const entry = { site: o.site, zone: o.zone, credential: user };
    if (json) {
      let cur: Record<string, any> = json;
      for (const k of registryPath) cur = cur[k] ??= {};
      cur[o.id] = entry;
      changes.replace('--aggregator-config', cfgFile, JSON.stringify(json, null, 2) + '\n', 0o644);
    } else {
      // Keeps the file's comments and layout (yaml Document API).
      doc!.setIn([...registryPath, o.id], doc!.createNode(entry, { flow: true }));
      if (!isMap(doc!.contents)) throw new ProvisionError(`${cfgFile}: the top level must be a mapping`);
      // No line width: the YAML writer would fold every line past 80 characters (the file's own too).
      changes.replace('--aggregator-config', cfgFile, doc!.toString({ lineWidth: 0 }), 0o644);
    }
    changed.push(`${cfgFile} (registry: ${o.id} -> site ${o.site}, zone ${o.zone})`);
  }
  const warnings = o.aclFile ? aclGrantsBeyondOwn(aclText, user).map((w) => `${o.aclFile}: ${w}`) : [];
  if (passwordFileMode !== null && (passwordFileMode & 0o004) !== 0)
    warnings.push(
      `${o.passwordFile}: every user of this machine may read it (mode ${passwordFileMode.toString(8).padStart(4, '0')}), and so try passwords against its hashes offline; its mode was kept: chmod o-rwx ${o.passwordFile}`,
    );
  return { credential: user, secretFile, changed, warnings };
}

/**
 * What `presence provision gateway` prints: the files changed, the reloads they need, and the
 * gateway's settings. The copy of a password file is asked for only when one was written: a run
 * that only moves a registry entry (--aggregator-config --rotate) made none, and the gateway keeps
 * the password it has.
 */
export function provisionReport(o: ProvisionOptions, r: ProvisionResult): string {
  const out = [`gateway ${o.id} (site ${o.site}, zone ${o.zone}), broker user name ${r.credential}`, 'changed:', ...r.changed.map((c) => `  ${c}`), ''];
  if (r.changed.length === 0) out.push('nothing to change: the files already hold this gateway');
  const brokerChanged = r.secretFile !== null || (o.aclFile !== undefined && r.changed.some((c) => c.startsWith(`${o.aclFile} (`)));
  const registryChanged = o.aggregatorConfig !== undefined && r.changed.some((c) => c.startsWith(`${o.aggregatorConfig} (`));
  if (brokerChanged) out.push('then reload Mosquitto so it reads the new credential and ACL: sudo systemctl reload mosquitto (or kill -HUP its pid)');
  if (registryChanged) out.push('and make the aggregator re-read its registry: sudo systemctl kill -s HUP presence-aggregator (SIGHUP; or restart it)');
  out.push(
    '',
    r.secretFile
      ? 'on the gateway (copy the password file there, e.g. with scp, as /etc/presence/mqtt-password, readable by the service user: chown root:presence and mode 0640; then delete this copy):'
      : 'on the gateway (no password was made here, as no --password-file was given: the gateway keeps the password file it has):',
    '  gateway:',
    `    site: ${o.site}`,
    `    zone: ${o.zone}`,
    `    id: ${o.id}`,
    '  mqtt:',
    `    username: ${r.credential}`,
    '    password_file: /etc/presence/mqtt-password',
    ...(o.homeassistant === undefined || o.homeassistant === false
      ? []
      : ['  homeassistant:', '    enabled: true', ...(typeof o.homeassistant === 'string' ? [`    prefix: ${o.homeassistant}`] : [])]),
    '',
  );
  return out.join('\n');
}

export function registerProvision(program: Command): void {
  const provision = program.command('provision').description("Set up identities: a gateway's broker credential, ACL and aggregator registry entry.");
  provision
    .command('gateway')
    .description(
      'Create a gateway\'s broker credential (user name "{site}/{gateway}", random password, mosquitto_passwd-compatible entry), ' +
        "make sure the ACL binds it to its own topics, and add it to the aggregator's registry; the password goes to a 0600 file, never to the terminal.",
    )
    .requiredOption('--site <site>', 'site id of the gateway')
    .requiredOption('--zone <zone>', 'zone id of the gateway')
    .requiredOption('--id <gateway>', 'gateway id')
    .option(
      '--password-file <file>',
      'Mosquitto password_file to add the credential to (created when absent, in a folder that exists), e.g. /etc/mosquitto/passwd',
    )
    .option('--acl-file <file>', 'Mosquitto acl_file: adds the presence patterns when missing, e.g. /etc/mosquitto/presence.acl')
    .option('--aggregator-config <file>', 'aggregator config file (YAML or JSON) to add the registry entry to, e.g. /etc/presence/aggregator.yaml')
    .option('--secret-out <file>', "where to write the gateway's password (mode 0600); default ./{site}-{id}.mqtt-password")
    .option('--rotate', 'replace an existing credential (new password) or move a registered gateway')
    .option(
      '--homeassistant [prefix]',
      'the gateway publishes Home Assistant discovery (homeassistant.enabled): let it write {prefix}/sensor/presence_{site}_{id}/+/config in the --acl-file (each _ of the site doubled; prefix: default homeassistant)',
    )
    .action((o: ProvisionOptions) => {
      let r: ProvisionResult;
      try {
        r = provisionGateway(o);
      } catch (e) {
        if (e instanceof ProvisionError || e instanceof SyntaxError) exitUsage('provision gateway', e);
        // A file that cannot be written (no permission, a folder that cannot be made): the reason,
        // not a stack trace.
        const sys = e as NodeJS.ErrnoException;
        if (sys.code && sys.syscall) {
          process.stderr.write(
            `presence provision gateway: ${redactedLine(sys.message)}\nhint: check the paths given and that this user may write them (sudo)\n`,
          );
          process.exit(1);
        }
        throw e;
      }
      process.stdout.write(provisionReport(o, r));
      for (const w of r.warnings) process.stderr.write(`presence provision gateway: warning: ${w}\n`);
    });
}
