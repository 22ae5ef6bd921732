// `presence corridor init` and `presence corridor join`: provisioning a corridor group's secret.
//
// init  makes the group secret (32 bytes from the CSPRNG) in a new file of mode 0600, once per group.
// join  installs a copy of that file on a gateway: checks it, writes it (mode 0600) where the
//       gateway's config will name it, and sets corridor.group and corridor.secret_file (and
//       corridor.epoch and corridor.sketch_p when given) in the gateway's config file, keeping its
//       comments; the config must still load afterwards, else nothing is changed.
// corridor.sketch_p has no default: both commands print the lines to add with the advised value and
// the epsilon it costs, and the gateway refuses a group without it, so the privacy/accuracy
// trade-off is the operator's choice.
// Neither command prints the secret. The aggregator never gets it: it knows groups and members only.
import { decimal } from '../scripts/lib/decimal.ts';
import { randomBytes } from 'node:crypto';
import { chownSync, existsSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import type { Command } from 'commander';
import * as YAML from 'yaml';
import { isAlias, isMap, isScalar, isSeq } from 'yaml';
import { parseJson, parseYamlDocument, syntaxProblem } from '../scripts/lib/yaml-doc.ts';
import { isValidId } from '../contract/index.ts';
import { ConfigError, epsilonText, FLOWS_AT_ADVISED, FLOWS_AT_HALF, loadConfig, SKETCH_P_ADVISED, sketchPRounding } from './config.ts';
import { parseSecret, readSecret, SECRET_BYTES, secretText } from './corridor.ts';
import { serviceUserOf, userIds } from './service-user.ts';
import { exitUsage, UsageError } from '../scripts/lib/usage.ts';
import { parseDuration } from '../scripts/lib/duration.ts';
import { MAX_SECRET_BYTES, missingSecretFile, pathCredentialsProblem } from '../scripts/lib/secrets.ts';
import { readSmallFile } from '../scripts/lib/small-file.ts';
import { FileWriteError, fileWriteProblem, isDiskFull, writeFileAtomic } from '../scripts/lib/atomic-file.ts';
import { MAX_CONFIG_BYTES } from '../scripts/lib/config-loader.ts';

const GROUP_HINT = 'a group id is lower case letters, digits, "-" or "_" (at most 63, starting with a letter or digit), e.g. main-street';

/**
 * Writes a file through a temporary one of mode 0600, then gives it `mode` (a secret keeps 0600).
 * A file that cannot be written is a UsageError naming `flag`, the path and why, and leaves no
 * temporary file (with the secret in it) behind.
 */
function writeFile(flag: string, path: string, text: string, mode: number): void {
  try {
    writeFileAtomic(path, text, { mode });
  } catch (e) {
    if (e instanceof FileWriteError)
      throw new UsageError(
        `${flag} ${e.message}`,
        isDiskFull(e)
          ? `nothing was changed; df -h ${dirname(path)} shows the space left there`
          : 'nothing was changed: fix the path or the permissions, then run it again',
      );
    throw e;
  }
}

export interface InitOptions {
  group: string;
  out: string;
  force?: boolean;
}

/** Creates a group secret file; returns its absolute path. Throws UsageError. */
/** Refuses a path flag holding a URL's credentials (pathCredentialsProblem): a file so named, or a line printing it, would show them. */
function refuseCredentialPaths(paths: [flag: string, path: string | undefined][]): void {
  for (const [flag, path] of paths) {
    const problem = path === undefined ? undefined : pathCredentialsProblem(flag, path);
    if (problem) throw new UsageError(problem);
  }
}

export function corridorInit(o: InitOptions): string {
  if (!isValidId(o.group)) throw new UsageError(`--group "${o.group}": not a group id`, GROUP_HINT);
  refuseCredentialPaths([['--out', o.out]]);
  const out = resolve(o.out);
  if (existsSync(out) && statSync(out).isDirectory())
    throw new UsageError(`--out ${out}: is a folder; give the path of the secret file to create, e.g. ${join(out, `${o.group}.secret`)}`);
  if (existsSync(out) && !o.force)
    throw new UsageError(
      `--out ${out}: the file exists (a group has one secret: copy that file instead); --force replaces it`,
      'presence corridor join installs a copy of an existing secret',
    );
  if (!existsSync(dirname(out))) throw new UsageError(`--out ${out}: the folder ${dirname(out)} does not exist`);
  const secret = new Uint8Array(randomBytes(SECRET_BYTES));
  try {
    writeFile('--out', out, secretText(secret), 0o600);
  } finally {
    secret.fill(0);
  }
  return out;
}

export interface JoinOptions {
  config: string;
  group: string;
  secretFile: string;
  install?: string;
  /** Run as root: the user the installed secret is given to (default: the unit's User= when --config is the file the unit names). */
  serviceUser?: string;
  epoch?: string;
  sketchP?: string;
  force?: boolean;
}

/** Installs a copied secret and names it in the gateway's config. Returns what changed. Throws UsageError or ConfigError. */
export function corridorJoin(o: JoinOptions): { installed: string; config: string; sketchP: number | undefined; owner?: string } {
  if (!isValidId(o.group)) throw new UsageError(`--group "${o.group}": not a group id`, GROUP_HINT);
  refuseCredentialPaths([
    ['--config', o.config],
    ['--secret-file', o.secretFile],
    ['--install', o.install],
  ]);
  const sketchP = o.sketchP === undefined ? undefined : decimal(o.sketchP);
  if (sketchP !== undefined && !(sketchP > 0 && sketchP < 1))
    throw new UsageError(`--sketch-p "${o.sketchP}": must be a number above 0 and below 1, e.g. ${SKETCH_P_ADVISED}`);
  const rounding = sketchP === undefined ? undefined : sketchPRounding(sketchP);
  if (rounding) throw new UsageError(`--sketch-p "${o.sketchP}": ${rounding}`);
  if (o.epoch !== undefined) {
    try {
      parseDuration(o.epoch);
    } catch {
      throw new UsageError(`--epoch "${o.epoch}": not a duration like 1h or 30m`);
    }
  }
  const config = resolve(o.config);
  if (!existsSync(config)) throw new UsageError(`--config ${config}: the gateway's config file does not exist`);
  // The copy may have lost its mode on the way (scp, a USB stick): its content is what counts here.
  let copied: string;
  try {
    copied = readSmallFile(o.secretFile, MAX_SECRET_BYTES);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    // The secret pasted where the path of its copy goes is not echoed (a name without a /).
    if (code === 'ENOENT') throw new UsageError(missingSecretFile('--secret-file', o.secretFile));
    throw new UsageError(`--secret-file ${o.secretFile}: ${code === 'ESMALLFILE' ? (e as Error).message : `cannot be read (${code ?? 'error'})`}`);
  }
  let secret: Uint8Array;
  try {
    secret = parseSecret(copied);
  } catch (e) {
    throw new UsageError(`--secret-file ${o.secretFile}: not a group secret: ${(e as Error).message}`, 'copy the file presence corridor init made, unchanged');
  }
  const installed = resolve(o.install ?? join(dirname(config), `corridor-${o.group}.secret`));
  // (read below to be put back if the config cannot be changed: a fifo there blocked for ever)
  if (existsSync(installed) && !statSync(installed).isFile())
    throw new UsageError(`--install ${fileWriteProblem(installed, { code: statSync(installed).isDirectory() ? 'EISDIR' : 'ENOTREG' }).message}`);
  if (existsSync(installed) && installed !== resolve(o.secretFile)) {
    let same = false;
    try {
      same = Buffer.from(parseSecret(readSmallFile(installed, MAX_SECRET_BYTES))).equals(Buffer.from(secret));
    } catch {
      same = false;
    }
    if (!same && !o.force) throw new UsageError(`--install ${installed}: another secret is there already; --force replaces it`);
  }
  let text: string;
  try {
    text = readSmallFile(config, MAX_CONFIG_BYTES);
  } catch (e) {
    throw new UsageError(`--config ${config}: ${(e as Error).message}`);
  }
  const json = /\.json$/i.test(config);
  const settings: Record<string, unknown> = {
    group: o.group,
    secret_file: installed,
    ...(o.epoch !== undefined ? { epoch: o.epoch } : {}),
    ...(sketchP !== undefined ? { sketch_p: sketchP } : {}),
  };
  let next: string;
  let chosenP: number | undefined;
  if (json) {
    let obj: Record<string, Record<string, unknown>>;
    try {
      obj = (text.trim() ? parseJson(YAML, text) : {}) as Record<string, Record<string, unknown>>;
    } catch (e) {
      throw new UsageError(`--config ${config}: not valid JSON: ${syntaxProblem(e, text, true)}`);
    }
    if (!obj || typeof obj !== 'object' || Array.isArray(obj)) throw new UsageError(`--config ${config}: the top level must be a mapping`);
    const present = obj.corridor as unknown;
    if (present !== undefined && present !== null && (typeof present !== 'object' || Array.isArray(present)))
      throw new UsageError(
        `--config ${config}: "corridor" must be an object of settings, not ${Array.isArray(present) ? 'a list' : JSON.stringify(present)}`,
        CORRIDOR_FIX,
      );
    obj.corridor = { ...(obj.corridor ?? {}), ...settings };
    chosenP = typeof obj.corridor.sketch_p === 'number' ? obj.corridor.sketch_p : undefined;
    next = `${JSON.stringify(obj, null, 2)}\n`;
  } else {
    // Keeps the file's comments and layout (yaml Document API; lineWidth 0: no line of the file is
    // folded, such as the field guide's one-line sources, which the writer folds past 80 characters).
    const doc = parseYamlDocument(YAML, text.trim() ? text : '{}\n');
    if (doc.errors.length) throw new UsageError(`--config ${config}: not valid YAML: ${syntaxProblem(doc.errors[0], text, false)}`);
    if (!isMap(doc.contents)) throw new UsageError(`--config ${config}: the top level must be a mapping`);
    corridorMapOf(doc, config, text);
    for (const [k, v] of Object.entries(settings)) doc.setIn(['corridor', k], v);
    const p = doc.getIn(['corridor', 'sketch_p']);
    chosenP = typeof p === 'number' ? p : undefined;
    next = doc.toString({ lineWidth: 0 });
  }
  // Install the secret first (0600), then the config; if the gateway would refuse the corridor
  // settings, undo both.
  const hadInstalled = existsSync(installed) ? readFileSync(installed) : null;
  try {
    if (installed !== resolve(o.secretFile) || (statSync(installed).mode & 0o077) !== 0) writeFile('--install', installed, secretText(secret), 0o600);
  } finally {
    secret.fill(0);
  }
  const mode = statSync(config).mode & 0o777;
  let configWritten = false;
  let owner: string | undefined;
  try {
    // (a config whose folder this user may not write: the secret just installed is taken back)
    writeFile('--config', config, next, mode);
    configWritten = true;
    checkLoads(config, next, json);
    readSecret(installed).fill(0);
    // Run as root (/etc/presence is root's: the README's `sudo`), the secret was root's, mode 0600, which
    // the service's user cannot read: the gateway stopped at its next start ("cannot be read
    // (permission denied)"). The gateway reads it as its own user's file, mode 0600.
    if (process.getuid?.() === 0) {
      const user = o.serviceUser ?? serviceUserOf(config);
      const ids = user ? userIds(user) : null;
      if (user && !ids) throw new UsageError(`--service-user ${user}: no such user on this machine`);
      if (user && ids) {
        chownSync(installed, ids.uid, ids.gid);
        owner = user;
      }
    }
  } catch (e) {
    if (configWritten) writeFile('--config', config, text, mode);
    if (hadInstalled) writeFile('--install', installed, hadInstalled.toString('utf8'), 0o600);
    else if (installed !== resolve(o.secretFile)) rmSync(installed, { force: true });
    throw e;
  }
  return { installed, config, sketchP: chosenP, ...(owner ? { owner } : {}) };
}

const CORRIDOR_FIX = 'make corridor a mapping of its settings (group, secret_file, ...), or delete the key: join then adds it';

/**
 * Makes the config's `corridor` key a mapping join can set keys in: a key without a value
 * (`corridor:` with its settings still commented out) or null becomes an empty mapping, keeping its
 * comments; an alias (which would change the node it names too), a list or a scalar is a UsageError
 * naming the line.
 */
function corridorMapOf(doc: YAML.Document.Parsed, config: string, text: string): void {
  const node = doc.get('corridor', true) as unknown;
  if (node === undefined || isMap(node)) return;
  if (isScalar(node) && node.value === null) {
    const map = doc.createNode({});
    if (node.commentBefore) map.commentBefore = node.commentBefore;
    if (node.comment) map.comment = node.comment;
    doc.set('corridor', map);
    return;
  }
  const start = (node as { range?: [number, number, number] | null }).range?.[0];
  const line = start === undefined ? '' : ` (line ${text.slice(0, start).split('\n').length})`;
  const what = isAlias(node)
    ? `an alias (*${node.source}) of another node, which join would change too`
    : isSeq(node)
      ? 'a list'
      : isScalar(node)
        ? `the value ${JSON.stringify(node.value)}`
        : 'this value';
  throw new UsageError(`--config ${config}: corridor${line}: must be a mapping of settings, not ${what}`, CORRIDOR_FIX);
}

/** The config lines that choose the flip probability, with the epsilon the advised value costs. */
export function sketchPLines(indent: string): string[] {
  return [
    `${indent}corridor:`,
    `${indent}  sketch_p: ${SKETCH_P_ADVISED}  # epsilon ${epsilonText(SKETCH_P_ADVISED)} per sketch and device; ${FLOWS_AT_ADVISED}; larger is more private and less accurate (0.5: epsilon ${epsilonText(0.5)}, ${FLOWS_AT_HALF})`,
  ];
}

/**
 * Loads the joined config as the gateway would. Settings a config file may leave to flags or the
 * environment (site, zone, id, broker, sources) are filled in with placeholders when missing, so
 * that only the file's own problems, the corridor's among them, are found. Throws ConfigError.
 */
function checkLoads(config: string, text: string, json: boolean): void {
  const obj = ((json ? JSON.parse(text) : parseYamlDocument(YAML, text).toJS()) ?? {}) as Record<string, Record<string, unknown> | unknown[]>;
  const gateway = (obj.gateway ??= {}) as Record<string, unknown>;
  for (const k of ['site', 'zone', 'id']) gateway[k] ??= 'placeholder';
  const mqtt = (obj.mqtt ??= {}) as Record<string, unknown>;
  mqtt.url ??= 'mqtt://placeholder:1883';
  obj.sources ??= [{ type: 'stdin' }];
  // corridor.sketch_p is the operator's choice, told after joining: a config without it is still joined
  const corridor = obj.corridor as Record<string, unknown>;
  corridor.sketch_p ??= SKETCH_P_ADVISED;
  // beside the config, so that its relative paths mean the same
  const check = join(dirname(config), `.presence-corridor-check-${process.pid}.json`);
  writeFileSync(check, JSON.stringify(obj), { mode: 0o600 });
  try {
    loadConfig({ config: check });
  } catch (e) {
    if (e instanceof ConfigError) throw new ConfigError(e.problems, config);
    throw e;
  } finally {
    rmSync(check, { force: true });
  }
}

export function registerCorridor(program: Command): void {
  const corridor = program
    .command('corridor')
    .description('Corridor groups: gateways that share a secret so the aggregator can estimate flows and travel times between them from noisy sketches');
  corridor
    .command('init')
    .description(
      `Make a corridor group's secret: 32 random bytes as 64 hex digits in a new file of mode 0600 (never printed). Once per group; copy the file to each gateway of the group and run presence corridor join there. Then prints the config lines to add: corridor.sketch_p has no default, ${SKETCH_P_ADVISED} costs epsilon ${epsilonText(SKETCH_P_ADVISED)} per sketch and device (${FLOWS_AT_ADVISED})`,
    )
    .requiredOption('--group <id>', 'group id, e.g. main-street (lower case, digits, - and _)')
    .requiredOption('--out <file>', 'the secret file to create (it must not exist)')
    .option('--force', 'replace an existing file (the gateways holding the old secret then no longer match)')
    .action((o: InitOptions) => {
      let out: string;
      try {
        out = corridorInit(o);
      } catch (e) {
        if (e instanceof UsageError) exitUsage('corridor init', e);
        throw e;
      }
      process.stdout.write(
        [
          `wrote the secret of corridor group ${o.group} to ${out} (mode 0600)`,
          'next, for each gateway of the group: copy the file there over a secure channel (e.g. scp) and run',
          `  presence corridor join --config /etc/presence/gateway.yaml --group ${o.group} --secret-file COPY`,
          'then delete the copies; keep this file as safe as the gateways themselves',
          `and tell the aggregator the group's members (no secret): corridors: [{ group: ${o.group}, site: SITE, members: [gw-a, gw-b] }]`,
          `choose the flip probability of the sketches (no default; the same in every gateway of the group): join --sketch-p ${SKETCH_P_ADVISED} sets it, or add to each gateway's config file`,
          ...sketchPLines('  '),
          '',
        ].join('\n'),
      );
    });
  corridor
    .command('join')
    .description(
      `Install a copied group secret on this gateway: check it, write it with mode 0600 (default: corridor-GROUP.secret next to the config file) and set corridor.group and corridor.secret_file in the gateway's config file (comments kept); the config must still load, else nothing changes. corridor.sketch_p has no default: --sketch-p sets it, else the lines to add are printed (${SKETCH_P_ADVISED}: epsilon ${epsilonText(SKETCH_P_ADVISED)} per sketch and device, ${FLOWS_AT_ADVISED}); the gateway does not start without it. Restart the gateway afterwards`,
    )
    .requiredOption('--config <file>', "the gateway's config file (YAML or JSON)")
    .requiredOption('--group <id>', 'group id, as given to presence corridor init')
    .requiredOption('--secret-file <file>', 'the copy of the file presence corridor init wrote')
    .option('--install <file>', 'where to install the secret (default: corridor-GROUP.secret next to the config file)')
    .option('--epoch <duration>', 'set corridor.epoch too (the same in every gateway of the group; default 1h)')
    .option(
      '--sketch-p <p>',
      `set corridor.sketch_p too, the flip probability of the sketches (no default; the same in every gateway of the group): ${SKETCH_P_ADVISED} gives ${FLOWS_AT_ADVISED} at epsilon ${epsilonText(SKETCH_P_ADVISED)} per sketch and device; larger is more private and less accurate (0.5: epsilon ${epsilonText(0.5)})`,
    )
    .option('--force', 'replace another secret already installed at --install')
    .option(
      '--service-user <user>',
      "run as root: give the installed secret to this user, who runs the gateway's service (default: the unit's User=, when --config is the file the unit's ExecStart names)",
    )
    .action((o: JoinOptions) => {
      let r: ReturnType<typeof corridorJoin>;
      try {
        r = corridorJoin(o);
      } catch (e) {
        if (e instanceof UsageError || e instanceof ConfigError) exitUsage('corridor join', e);
        throw e;
      }
      process.stdout.write(
        [
          `joined corridor group ${o.group}: secret installed at ${r.installed} (mode 0600${r.owner ? `, owner ${r.owner}, who runs the gateway` : ''}); ${r.config} names it (corridor.group, corridor.secret_file)`,
          ...(r.sketchP === undefined
            ? [
                `corridor.sketch_p is not set in ${r.config}: the gateway will not start until it is. Choose the flip probability (the same in every gateway of the group) and add`,
                ...sketchPLines('  '),
                `  or run this command again with --sketch-p ${SKETCH_P_ADVISED}`,
              ]
            : [`corridor.sketch_p ${r.sketchP}: epsilon ${epsilonText(r.sketchP)} per sketch and device`]),
          `${r.sketchP === undefined ? 'once corridor.sketch_p is set, restart' : 'restart'} the gateway to start publishing sketches, and delete the copy ${resolve(o.secretFile) === r.installed ? '(none: installed in place)' : o.secretFile}`,
          '',
        ].join('\n'),
      );
    });
}
