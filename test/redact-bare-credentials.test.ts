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

// A URL of a free text ends at white space, a quote or an angle bracket, unless what follows is more of
// its user information (a password holding a space or a quote): then it runs on to the @ that ends it.
describe('where a URL in a free text ends', () => {
  it('a URL without credentials keeps the text after it, whatever @ comes later', () => {
    for (const text of [
      'cannot reach mqtt://broker:1883; ask ops@example.org',
      'mqtt://broker:1883 (source cmd:ssh pi@gw tcpdump)',
      'mqtt://broker:1883 ops@example.org',
      'mqtt://broker; ask ops@example.org',
      'http://influx:8086/write failed, see ops@example.org',
      '{"url":"mqtt://broker:1883","mail":"ops@example.org"}',
      '["mqtt://broker", "ops@example.org"]',
      "'mqtt://broker:1883' and 'a@b'",
      'see <mqtt://broker:1883> or mail <ops@example.org>',
      'mqtt://[::1]:1883 down, ops@example.org',
      'at 12:30@lobby',
      'from 2026-11-28T12:30:05@lobby',
    ]) {
      expect(redactUrlsIn(text), text).toBe(text);
      expect(holdsUrlCredentials(text), text).toBe(false);
    }
  });

  it('each URL with credentials loses only its own, the text between stays', () => {
    const cases: [string, string][] = [
      [
        'connect to http://writer:Ext-Pw1@influx:8086/write failed; also mqtts://u:Ext-Pw2@b:8883',
        'connect to http://influx:8086/write failed; also mqtts://b:8883',
      ],
      ['mqtts://u:Ext-Pw1@b:8883 ws://u2:Ext-Pw2@b2:9001/mqtt', 'mqtts://b:8883 ws://b2:9001/mqtt'],
      ['broker mqtt://u:Ext-Pw1@h:1883, ask ops@example.org', 'broker mqtt://h:1883, ask ops@example.org'],
      ['{"url":"mqtt://u:Ext-Pw1@broker:1883","mail":"ops@example.org"}', '{"url":"mqtt://broker:1883","mail":"ops@example.org"}'],
      ['{"a":"mqtt://broker:1883","b":"u:Ext-Pw1@h"}', '{"a":"mqtt://broker:1883","b":"***@h"}'],
      ['got "mqtt://u:Ext-Pw1@[::1]:1883"', 'got "mqtt://[::1]:1883"'],
      ['got mqtts://u:Ext-Pw1@[fe80::1%25eth0]:8883/x now', 'got mqtts://[fe80::1%25eth0]:8883/x now'],
      ['http://influx:8086/?token=Ext-Pw1&x=1 failed; ops@x', 'http://influx:8086/?token=REDACTED&x=1 failed; ops@x'],
    ];
    for (const [text, want] of cases) {
      expect(redactUrlsIn(text), text).toBe(want);
      expect(holdsUrlCredentials(text), text).toBe(true);
    }
  });

  it('a password holding spaces, quotes or an @ is taken out whole', () => {
    const cases: [string, string][] = [
      ['mqtt://u:correct horse Ext staple@broker:1883 refused', 'mqtt://broker:1883 refused'],
      ['mqtt://u:"Ext-Pw1"@h', 'mqtt://h'],
      ["mqtt://u:'Ext Pw1'@h:1883", 'mqtt://h:1883'],
      ['mqtt://u:p@Ext Pw1@broker:1883', 'mqtt://broker:1883'],
      ['mqtt://u:Ext Pw1@broker:1883 then ops@example.org', 'mqtt://broker:1883 then ops@example.org'],
      // without a scheme's //: a password in quotes
      ['u:"Ext Pw1"@h', '***@h'],
      ['url mqtt:/u:"Ext-Pw1"@h x', 'url mqtt:/***@h x'],
      ["s/gw-1:'Ext-Pw1'@broker", 's/***@broker'],
    ];
    for (const [text, want] of cases) {
      expect(redactUrlsIn(text), text).toBe(want);
      expect(holdsUrlCredentials(text), text).toBe(true);
      expect(redactUrlsIn(want), want).toBe(want); // redacted once, nothing more goes
    }
  });
});

describe('tokens and passwords outside a URL', () => {
  it('an Authorization header, a token after its scheme and a secret flag or variable lose their value', () => {
    const cases: [string, string][] = [
      ['Authorization: Token Ext-Tok1abc', 'Authorization: Token ***'],
      ['{"headers":{"Authorization":"Token Ext-Tok1abc"}}', '{"headers":{"Authorization":"Token ***"}}'],
      ['Authorization: Basic dXNlcjpwYXNz', 'Authorization: Basic ***'],
      ['got 401 for Bearer eyJhbGciOiJIUzI1NiJ9.e30.Ext1', 'got 401 for Bearer ***'],
      ['presence aggregator --influx-token=Ext-Tok1abc --zone z', 'presence aggregator --influx-token=*** --zone z'],
      ['INFLUX_TOKEN=Ext-Tok1abc MQTT_PASSWORD=Ext-Tok1abc', 'INFLUX_TOKEN=*** MQTT_PASSWORD=***'],
    ];
    for (const [text, want] of cases) {
      expect(redactUrlsIn(text), text).toBe(want);
      expect(holdsUrlCredentials(text), text).toBe(true);
    }
  });

  it('leaves words that only name them', () => {
    for (const text of [
      'Bearer authentication failed',
      'Token expired',
      'the token is set',
      "option '--influx-token <token>' argument missing",
      'MQTT_PASSWORD_FILE=/run/secrets/mqtt --influx-token-file=/run/secrets/influx',
      'token=REDACTED password=***',
    ]) {
      expect(redactUrlsIn(text), text).toBe(text);
      expect(holdsUrlCredentials(text), text).toBe(false);
    }
  });
});
