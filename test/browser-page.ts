/**
 * Debian's chromium driven by playwright-core, and the example page (examples/browser/) as a
 * user works it: form fields and buttons, read back from what the page shows. One browser per
 * test file; each page gets a context of its own, so no state passes between them. Several
 * pages may talk to several services: a page is given its service URL when it connects.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { chromium, type Browser, type BrowserContext, type Locator, type Page } from 'playwright-core';
import { repoPath, requireExecutable } from './stack-helpers.js';
import { withTimeout } from './helpers.js';

const CHROMIUM = '/usr/bin/chromium';

/** Generous: a loaded two-core machine can take seconds to start a browser or paint a page. */
const STEP_MS = 20_000;

let launched: Promise<Browser> | undefined;

/** The file's one browser, started on first use; a missing chromium fails the caller, never skips it. */
export function browser(): Promise<Browser> {
  requireExecutable(CHROMIUM, 'chromium');
  // launch() gives every browser a fresh temporary profile (user-data dir) and removes it on close.
  launched ??= chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    timeout: 60_000,
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
  return launched;
}

export async function closeBrowser(): Promise<void> {
  const started = launched;
  launched = undefined;
  await (await started?.catch(() => undefined))?.close();
}

export interface Site {
  /** The page's URL, ending in `/`; its origin is what the browser sends as `Origin`. */
  readonly url: string;
  readonly origin: string;
  stop(): Promise<void>;
}

/** `npm run example:browser` on a free loopback port: the dev script is what serves the page. */
export async function serveExample(): Promise<Site> {
  const child: ChildProcess = spawn(process.execPath, [repoPath('scripts/serve-example.mjs'), '0'], { stdio: ['ignore', 'pipe', 'inherit'] });
  let out = '';
  child.stdout!.setEncoding('utf8');
  const line = await withTimeout(
    new Promise<string>((resolve, reject) => {
      child.stdout!.on('data', (chunk: string) => {
        out += chunk;
        if (out.includes('\n')) resolve(out.slice(0, out.indexOf('\n')));
      });
      child.once('exit', (code) => reject(new Error(`serve-example exited with ${code} before listening`)));
    }),
    10_000,
    'the example server',
  );
  const { url } = JSON.parse(line) as { url: string };
  return {
    url,
    origin: new URL(url).origin,
    async stop() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      const exited = once(child, 'exit');
      child.kill('SIGTERM');
      await exited;
    },
  };
}

export interface Connected {
  /** `open`, or `closed` when the upgrade was refused or the socket closed. */
  readonly state: string;
  readonly text: string;
}

export interface Sent {
  readonly id: string;
  readonly traceId: string;
  readonly spanId: string;
  /** The reply's type (`pong`, `subscribed`, `published`, `error`). */
  readonly reply: string;
  readonly replyText: string;
  /** The channel position the reply carried (`published`, `subscribed`), as the page shows it; '' otherwise. */
  readonly epoch: string;
  readonly offset: string;
}

export interface Delivery {
  readonly channel: string;
  readonly data: string;
  /** The publication's channel position, as the page shows it. */
  readonly epoch: string;
  readonly offset: string;
  /** The trace id of the delivery's traceparent, as the page shows it. */
  readonly traceId: string;
  /** The span id of the delivery's traceparent (the delivering instance's CONSUMER span). */
  readonly spanId: string;
  /** Whether the page marked it as a trace it started. */
  readonly mine: boolean;
}

/** The example page in a fresh browser context. */
export class ExamplePage {
  /** Uncaught exceptions in the page's script: a working page has none. */
  readonly errors: string[] = [];

  private constructor(
    readonly context: BrowserContext,
    readonly page: Page,
  ) {
    page.on('pageerror', (err) => this.errors.push(err.message));
  }

  static async open(site: Site): Promise<ExamplePage> {
    const context = await (await browser()).newContext();
    const page = await context.newPage();
    page.setDefaultTimeout(STEP_MS);
    await page.goto(site.url);
    return new ExamplePage(context, page);
  }

  /** Fills the form and connects; resolves once the page shows the socket open or closed. */
  async connect(serviceUrl: string, token = ''): Promise<Connected> {
    await this.page.fill('#url', serviceUrl);
    await this.page.fill('#token', token);
    await this.page.click('#connect');
    const status = this.page.locator('#status:is([data-state="open"], [data-state="closed"], [data-state="error"])');
    await status.waitFor();
    return { state: (await status.getAttribute('data-state')) ?? '', text: (await status.textContent()) ?? '' };
  }

  /** Closes the socket from the page (1000) and waits until the page shows it closed. */
  async disconnect(): Promise<Connected> {
    await this.page.click('#disconnect');
    const status = this.page.locator('#status[data-state="closed"]');
    await status.waitFor();
    return { state: 'closed', text: (await status.textContent()) ?? '' };
  }

  async ping(): Promise<Sent> {
    return this.#send('#ping');
  }

  async subscribe(channel: string): Promise<Sent> {
    await this.page.fill('#channel', channel);
    return this.#send('#subscribe');
  }

  /** Publishes on the channel in the form (the last subscribed, unless changed). */
  async publish(text: string, channel?: string): Promise<Sent> {
    if (channel !== undefined) await this.page.fill('#channel', channel);
    await this.page.fill('#text', text);
    return this.#send('#publish');
  }

  /** Waits until the page shows a delivery in this trace. */
  async delivery(traceId: string): Promise<Delivery> {
    const row = this.page.locator(`#deliveries tr[data-trace-id="${traceId}"]`);
    await row.waitFor();
    return ExamplePage.#deliveryOf(row, await row.locator('td').allTextContents());
  }

  /** Every delivery the page shows, in arrival order. */
  async deliveries(): Promise<Delivery[]> {
    const found: Delivery[] = [];
    for (const row of await this.page.locator('#deliveries tr').all()) {
      found.push(await ExamplePage.#deliveryOf(row, await row.locator('td').allTextContents()));
    }
    return found;
  }

  static async #deliveryOf(row: Locator, texts: string[]): Promise<Delivery> {
    const [channel, data, epoch, offset, traceId] = texts;
    return { channel, data, epoch, offset, traceId, spanId: (await row.getAttribute('data-span-id')) ?? '', mine: (await row.getAttribute('data-mine')) === 'true' };
  }

  async close(): Promise<void> {
    await this.context.close();
  }

  /** Clicks a button that sends one message, then waits for the page to show its reply. */
  async #send(button: string): Promise<Sent> {
    const rows = this.page.locator('#sent tr');
    const before = await rows.count();
    await this.page.click(button);
    const row = rows.nth(before);
    await this.page.locator(`#sent tr:nth-child(${before + 1})[data-reply]`).waitFor();
    return {
      id: (await row.getAttribute('data-id')) ?? '',
      traceId: (await row.getAttribute('data-trace-id')) ?? '',
      spanId: (await row.getAttribute('data-span-id')) ?? '',
      reply: (await row.getAttribute('data-reply')) ?? '',
      replyText: (await row.locator('td').nth(3).textContent()) ?? '',
      epoch: (await row.getAttribute('data-epoch')) ?? '',
      offset: (await row.getAttribute('data-offset')) ?? '',
    };
  }
}
