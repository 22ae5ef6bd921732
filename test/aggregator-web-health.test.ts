// The aggregator's page says what /healthz says (aggregator/web.ts `health` events, aggregator/health.ts
// healthReport), with real parts: a real Mosquitto, a real influxd 1.6.7, the aggregator in this
// process and a real headless Chromium. Before, the page showed "live" and its charts stopped where
// writing stopped, with nothing saying why, while the broker was down or writes failed; and when
// the aggregator itself was gone, only "reconnecting" in the header while the old state stayed.
// - Broker stopped: the page shows "Unhealthy" with /healthz's problem (not connected to the MQTT
//   broker); started again: the notice goes.
// - influxd stopped with a window to write: "Unhealthy" with the failing writes; started again: gone.
// - The InfluxDB password of influx.url never reaches the page (the same redaction as /healthz).
// - The aggregator stopped: the page says it has no connection and that what it shows is from before.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Aggregator } from '../aggregator/aggregator.ts';
import { countsTopic, encode } from '../contract/index.ts';
import { publisher, window as countsWindow } from './aggregator-helpers.ts';
import { launchBrowser, needChromium, openPage, type Browser, type OpenedPage } from './support/browser.ts';
import { Influxd } from './support/influxd.ts';
import { Mosquitto } from './support/mosquitto.ts';
import { need } from './support/need.ts';
import { eventually } from './support/wait.ts';

const SUITE = 'aggregator page health (Mosquitto, influxd, headless Chromium)';
const ok = need('mosquitto', 'mosquitto', SUITE) && need('influxd', 'influxdb', SUITE) && needChromium(SUITE);
const PASSWORD = 'Influx-page-secret-7431';

describe.skipIf(!ok)(SUITE, () => {
  const dir = mkdtempSync(join(tmpdir(), 'presence-agg-web-health-'));
  const log = pino({ level: 'warn' }, pino.destination({ dest: join(dir, 'test.log'), sync: false }));
  let mosquitto: Mosquitto;
  let influxd: Influxd;
  let aggregator: Aggregator;
  let browser: Browser;
  let opened: OpenedPage;
  /** The page's health notice: shown, its text, and the status it was given last. */
  const notice = () =>
    opened.page.evaluate(`(() => {
      const box = document.getElementById('health');
      return { shown: !!box && !box.hidden && box.offsetHeight > 0, text: box ? box.innerText : '', status: window.presencePage.health ? window.presencePage.health.status : null };
    })()`) as Promise<{ shown: boolean; text: string; status: string | null }>;

  beforeAll(async () => {
    mosquitto = await new Mosquitto().start();
    influxd = await new Influxd('presence').start();
    browser = await launchBrowser();
    const url = new URL(influxd.url);
    url.username = 'presence';
    url.password = PASSWORD;
    aggregator = new Aggregator(
      {
        mqtt: { url: mosquitto.url, client_id: 'presence-web-health-test' },
        influx: { url: url.href, api: 'v1', database: 'presence' },
        batch: { max_retry_delay: 500 },
        http: { port: 0 },
      },
      { logger: log.child({ component: 'aggregator' }) },
    );
    await aggregator.start();
    opened = await openPage(browser, `http://127.0.0.1:${aggregator.httpPort}/`);
  }, 60_000);

  afterAll(async () => {
    await browser?.close();
    await aggregator?.stop(5000).catch(() => {});
    await mosquitto?.dispose();
    await influxd?.dispose();
    rmSync(dir, { recursive: true, force: true });
  });

  it('shows no notice while healthy, and "unhealthy" with the reason while the broker is down', async () => {
    await eventually('the page has the health', async () => (await notice()).status === 'ok');
    expect((await notice()).shown).toBe(false);
    await mosquitto.stop();
    await eventually('the page says the aggregator is unhealthy', async () => (await notice()).shown);
    const n = await notice();
    expect(n.status).toBe('unhealthy');
    expect(n.text).toContain('Unhealthy: nothing new is written');
    expect(n.text).toContain('not connected to the MQTT broker');
    await mosquitto.start();
    await eventually('the notice goes once connected again', async () => !(await notice()).shown, 30_000);
    expect((await notice()).status).toBe('ok');
  }, 60_000);

  it('shows the failing writes while influxd is down, never the InfluxDB password, and none once they go through', async () => {
    const pub = await publisher(mosquitto.url);
    try {
      await influxd.stop();
      const w = countsWindow('health', 'gw-1', 1, Date.now() - 120_000, 60_000, 'hall');
      await pub.publishAsync(countsTopic('health', 'gw-1'), encode(w), { qos: 1 });
      await eventually('the page says writes fail', async () => (await notice()).text.includes('failing'));
      const n = await notice();
      expect(n.status).toBe('unhealthy');
      expect(n.text).toMatch(/writes to .* failing for \d+ s/);
      const html = await opened.page.content();
      expect(html).not.toContain(PASSWORD);
      const healthz = await (await fetch(`http://127.0.0.1:${aggregator.httpPort}/healthz`)).text();
      expect(healthz).not.toContain(PASSWORD);
      await influxd.start();
      await eventually('the notice goes once the window is written', async () => !(await notice()).shown, 45_000);
      expect(await influxd.count('presence', 'estimate', `"zone" = 'hall'`)).toBe(2);
    } finally {
      await pub.endAsync();
    }
  }, 90_000);

  it('says when the page has lost the aggregator, and that what it shows is from before', async () => {
    await aggregator.stop(5000);
    await eventually('the page says the connection is lost', async () => (await notice()).status === 'lost');
    const n = await notice();
    expect(n.shown).toBe(true);
    expect(n.text).toMatch(/No connection to the aggregator since .*: what is shown is from before/);
    // the errors the browser logs for the refused reconnections are expected here; none before
    expect(opened.errors.filter((e) => !/ERR_CONNECTION_REFUSED|api\/events/.test(e))).toEqual([]);
  }, 60_000);
});
