// Credentials written without a URL's `scheme://` (a broker address `user:secret@broker:1883`, a
// scheme missing a slash, `mqtt:/user:secret@broker`, what a path made of a URL becomes) are taken
// out of free text as a URL's are: scripts/lib/secrets.ts redactUrlsIn, holdsUrlCredentials, and the
// process title (scripts/cli.ts maskedArgs).
import { describe, expect, it } from 'vitest';
import { maskedArgs } from '../scripts/cli.ts';
import { captureEnv } from '../gateway/sources.ts';
import { holdsUrlCredentials, redactUrlsIn } from '../scripts/lib/secrets.ts';

describe('credentials without scheme:// in free text', () => {
  it('the user information goes, the host, a path before it and a scheme stay', () => {
    const cases: [string, string][] = [
      ['got "u:Bare-Pw1@broker:1883"', 'got "***@broker:1883"'],
      ['got "gw:Bare-Pw1@broker.example.org"', 'got "***@broker.example.org"'],
      ['queue /tmp/q/mqtt:/u:Bare-Pw1@broker: not writable', 'queue /tmp/q/mqtt:/***@broker: not writable'],
      ['mqtt:/u:Bare-Pw1@broker:1883 refused', 'mqtt:/***@broker:1883 refused'],
      ['http//u:Bare-Pw1@influx:8086 is not a URL', 'http//***@influx:8086 is not a URL'],
      // a password holding a / or an @: all up to the last @ goes
      ['u:Bare/Pw1@broker', '***@broker'],
      ['u:Bare/Pw1@broker:1883', '***@broker:1883'],
      ['u:Bare@Pw1@broker', '***@broker'],
      // an MQTT user name of site/gateway: its site is left, not the password
      ['s/gw-1:Bare-Pw1@broker', 's/***@broker'],
      ['--site=u:Bare-Pw1@broker', '--site=***@broker'],
      ['at u:Bare-Pw1@[::1]:1883', 'at ***@[::1]:1883'],
      ['mqtt:/TOKEN-Bare1@broker', 'mqtt:/***@broker'],
      ['https:TOKEN-Bare1@influx:8086', 'https:***@influx:8086'],
    ];
    for (const [text, want] of cases) {
      expect(redactUrlsIn(text), text).toBe(want);
      expect(holdsUrlCredentials(text), text).toBe(true);
    }
  });

  it('leaves text without credentials whole: e-mail addresses, mailto:, paths, npm scopes, times', () => {
    for (const text of [
      'ops@example.org',
      'site jan@home.example.org',
      'mailto:ops@example.org',
      'git@github.com:org/repo',
      'at /srv/app/node_modules/@influxdata/influxdb-client/dist/index.js:1:234',
      'node_modules/.pnpm/@a+b@1.2.3/node_modules/x.js:1:2',
      'at 12:30 @home',
      'user:@host',
      '/var/lib/presence/gateway-s-gw1',
      'mqtt://broker:1883',
      // lists of paths, as PATH holds them (npm's, Homebrew's)
      'PATH=/x/node_modules/.bin:/usr/lib/node_modules/npm/node_modules/@npmcli/run-script/lib/node-gyp-bin:/usr/bin',
      'PATH=/usr/local/bin:/opt/homebrew/opt/python@3.11/bin:/usr/bin',
      '/usr/local/bin:/opt/homebrew/opt/python@3.11',
    ]) {
      expect(redactUrlsIn(text), text).toBe(text);
      expect(holdsUrlCredentials(text), text).toBe(false);
    }
  });

  it('the process title shows them masked', () => {
    expect(maskedArgs(['gateway', '--site', 'u:Bare-Pw1@broker:1883', '--queue-dir=/q/mqtt:/u:Bare-Pw1@b', '--zone', 'z'])).toEqual([
      'gateway',
      '--site',
      '***@broker:1883',
      '--queue-dir=/q/mqtt:/***@b',
      '--zone',
      'z',
    ]);
    expect(maskedArgs(['gateway', '--site', 'jan@home.example.org'])).toBeNull();
  });

  it("a capture command's environment leaves out a variable holding them, and keeps PATH", () => {
    const path = '/usr/local/bin:/opt/homebrew/opt/python@3.11/bin:/usr/lib/node_modules/npm/node_modules/@npmcli/run-script/lib/node-gyp-bin';
    expect(captureEnv({ BROKER: 'gw:Bare-Pw1@broker:1883', PATH: path, MAIL: 'ops@example.org' })).toEqual({ PATH: path, MAIL: 'ops@example.org' });
  });
});
