// A real headless browser for the web page tests: Debian's Chromium (`/usr/bin/chromium`, or
// CHROMIUM_PATH) driven by puppeteer-core, which downloads no browser. As with the servers in
// need.ts: a missing Chromium skips the suite with a message, and under CI=true fails it.
//
//   const ok = needChromium(SUITE);
//   describe.skipIf(!ok)(SUITE, () => {
//     let browser: Browser; beforeAll(async () => { browser = await launchBrowser(); }); afterAll(() => browser?.close());
//     it('...', async () => { const v = await openPage(browser, url); ...; expect(v.errors).toEqual([]); await v.page.close(); });
//   });
import { existsSync } from 'node:fs';
import puppeteer, { type Browser, type Page } from 'puppeteer-core';

export type { Browser, Page } from 'puppeteer-core';

/** The Chromium binary the tests drive. */
export const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';

/** True when Chromium is installed. Missing: under CI throws (the suite fails); else warns and returns false. */
export function needChromium(suite: string): boolean {
  if (existsSync(CHROMIUM)) return true;
  const msg = `${suite}: needs Chromium at ${CHROMIUM} (Debian package chromium: apt-get install -y chromium, or set CHROMIUM_PATH)`;
  if (process.env.CI === 'true') throw new Error(`${msg}; CI=true, so this fails instead of skipping`);
  console.warn(`SKIPPED ${msg}`);
  return false;
}

/** Starts headless Chromium (no sandbox: tests run as root in containers). */
export function launchBrowser(): Promise<Browser> {
  return puppeteer.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage', '--no-first-run', '--no-default-browser-check', '--lang=en-GB'],
  });
}

export interface OpenedPage {
  page: Page;
  /**
   * Console errors, uncaught page errors, failed requests and responses with status >= 400, as
   * they happen (read it after the checks: it grows while the page runs).
   */
  errors: string[];
}

export interface OpenOptions {
  /** Basic auth credentials the browser sends. */
  auth?: { username: string; password: string };
  /** Viewport (default 1280x900). */
  viewport?: { width: number; height: number };
  /** IANA time zone the page runs in (default: the test process's). */
  timeZone?: string;
}

/** Opens `url` in a new tab and waits for its load event; collects every error while it is open. */
export async function openPage(browser: Browser, url: string, opts: OpenOptions = {}): Promise<OpenedPage> {
  const page = await browser.newPage();
  const errors: string[] = [];
  page.on('console', (m) => {
    if (m.type() === 'error') errors.push(`console: ${m.text()}`);
  });
  page.on('pageerror', (e) => errors.push(`page error: ${(e as Error).message ?? String(e)}`));
  page.on('requestfailed', (r) => {
    // a stream the page closes itself (reload, close) is no failure
    if (r.failure()?.errorText === 'net::ERR_ABORTED' && r.resourceType() === 'eventsource') return;
    errors.push(`request failed: ${r.url()} ${r.failure()?.errorText ?? ''}`);
  });
  page.on('response', (r) => {
    if (r.status() >= 400) errors.push(`HTTP ${r.status()}: ${r.url()}`);
  });
  if (opts.auth) await page.authenticate(opts.auth);
  if (opts.timeZone) await page.emulateTimezone(opts.timeZone);
  await page.setViewport(opts.viewport ?? { width: 1280, height: 900 });
  await page.goto(url, { waitUntil: 'load' });
  return { page, errors };
}
