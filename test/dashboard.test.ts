import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { stringify } from 'yaml';
import { Client, eventually, killChildren, startChild, withTimeout, type RunningService } from './helpers.js';
import { startOtlpReceiver, type AttributeValue, type OtlpReceiver, type ReceivedMetric } from './otlp-receiver.js';
import { readRepoFile, readYaml, repoPath, requireBinary } from './stack-helpers.js';
import { PrometheusServer } from './prometheus-server.js';
import { attemptUpgrade } from './upgrade-attempt.js';

// The Grafana dashboard (otel/grafana/dashboards/ws-service.json) and its provisioning
// (otel/grafana/provisioning/), proven without Grafana: every query a panel, an annotation, a
// variable or the Jaeger data source's trace-to-metrics runs is sent, with Grafana's variables
// substituted, to Debian's real Prometheus loaded with otel/prometheus.yml and the alert rules
// and scraping two running main.js instances with traffic on them. The otel-collector job
// scrapes a stand-in serving what the collector's Prometheus exporter would serve for a third
// instance that really shut down and pushed its shutdown_duration over OTLP.

const DASHBOARD = 'otel/grafana/dashboards/ws-service.json';
const DATASOURCES = 'otel/grafana/provisioning/datasources/datasources.yml';
const PROVIDERS = 'otel/grafana/provisioning/dashboards/dashboards.yml';
/** The panels an operator reads first: each must show finite numbers, not only "No data" or NaN. */
const CORE_PANELS = [
  'Connections against MAX_CONNECTIONS',
  'Messages per second by type and outcome',
  'Unhandled errors per second by source',
  'Message processing time p50 and p99',
  'Deliveries per second by namespace',
  'Delivery lag p99 by namespace',
];
/** What test traffic publishes to: two namespaces of CHANNEL_NAMESPACES and one folded into `other`. */
const CHANNELS = ['chat:room-1', 'news:desk', 'misc:lobby'];
const SCRAPE_S = 1;
/** Grafana's $__rate_interval for a 1 s scrape and a 1 s step: max(4 × scrape, step + scrape). */
const RATE_INTERVAL = `${4 * SCRAPE_S}s`;

// ---- the dashboard model ----------------------------------------------------------------

interface DatasourceRef {
  type?: string;
  uid?: string;
}
interface Link {
  title: string;
  url: string;
}
interface Target {
  refId: string;
  expr?: string;
  instant?: boolean;
  range?: boolean;
  format?: string;
  datasource?: DatasourceRef;
}
interface Panel {
  id: number;
  type: string;
  title: string;
  datasource?: DatasourceRef;
  gridPos: { x: number; y: number; w: number; h: number };
  targets?: Target[];
  panels?: Panel[];
  collapsed?: boolean;
  fieldConfig?: { defaults?: { links?: Link[] } };
}
interface Variable {
  name: string;
  type: string;
  datasource?: DatasourceRef;
  definition?: string;
  query?: string | { query: string };
  includeAll?: boolean;
  multi?: boolean;
  allValue?: string;
}
interface Annotation {
  name: string;
  datasource?: DatasourceRef;
  expr?: string;
  builtIn?: number;
}
interface Dashboard {
  uid: string;
  title: string;
  schemaVersion: number;
  panels: Panel[];
  links: Link[];
  templating: { list: Variable[] };
  annotations: { list: Annotation[] };
}
interface Datasource {
  name: string;
  type: string;
  uid: string;
  url: string;
  isDefault?: boolean;
  jsonData?: {
    timeInterval?: string;
    tracesToMetrics?: { datasourceUid: string; tags: { key: string; value: string }[]; queries: { name: string; query: string }[] };
  };
}

function dashboard(): Dashboard {
  return JSON.parse(readRepoFile(DASHBOARD)) as Dashboard;
}

/** Every panel, those inside rows (collapsed rows keep theirs in `panels`) included; rows themselves too. */
function allPanels(d: Dashboard): Panel[] {
  return d.panels.flatMap((p) => [p, ...(p.panels ?? [])]);
}

/** One PromQL query the dashboard runs: where it comes from, and whether Grafana asks for an instant or a range. */
interface Query {
  readonly where: string;
  readonly panel?: Panel;
  readonly expr: string;
  readonly instant: boolean;
}

function panelQueries(d: Dashboard): Query[] {
  const queries: Query[] = [];
  for (const panel of allPanels(d)) {
    for (const t of panel.targets ?? []) {
      assert.ok(t.expr, `${panel.title} ${t.refId}: a PromQL expression`);
      queries.push({ where: `panel "${panel.title}" ${t.refId}`, panel, expr: t.expr, instant: t.instant === true && t.range !== true });
    }
  }
  for (const a of d.annotations.list) {
    if (a.builtIn) continue;
    assert.ok(a.expr, `annotation ${a.name}: a PromQL expression`);
    queries.push({ where: `annotation "${a.name}"`, expr: a.expr, instant: false });
  }
  return queries;
}

/** `label_values(selector, label)` of each query variable. */
function variableQueries(d: Dashboard): { name: string; selector: string; label: string }[] {
  return d.templating.list
    .filter((v) => v.type === 'query')
    .map((v) => {
      const text = typeof v.query === 'string' ? v.query : v.query?.query;
      assert.equal(text, v.definition, `variable ${v.name}: definition and query agree`);
      const match = /^label_values\((.+),\s*(\w+)\)$/.exec(text ?? '');
      assert.ok(match, `variable ${v.name}: label_values(selector, label), got ${text}`);
      return { name: v.name, selector: match[1], label: match[2] };
    });
}

function datasources(): Datasource[] {
  return readYaml<{ apiVersion: number; datasources: Datasource[] }>(DATASOURCES).datasources;
}

/**
 * What Grafana does to every string of a provisioning file: splits it on `$$`, expands
 * environment variables ($NAME, ${NAME}) in each part, and joins the parts with `$`
 * (pkg/services/provisioning/values). Throws when a part holds a `$`: it would be taken as a
 * variable of Grafana's environment, most likely empty.
 */
function provisioned(value: string): string {
  const parts = value.split('$$');
  for (const part of parts) assert.ok(!part.includes('$'), `a lone $ in ${JSON.stringify(value)}: Grafana expands it from its environment; write $$`);
  return parts.join('$');
}

/** The trace-to-metrics queries of the Jaeger data source, as Grafana runs them for a span of service ws-service. */
function traceToMetricsQueries(): Query[] {
  const jaeger = datasources().find((ds) => ds.type === 'jaeger');
  const t2m = jaeger?.jsonData?.tracesToMetrics;
  assert.ok(t2m, 'the Jaeger data source links spans to metrics');
  const tags = t2m.tags.map((t) => `${t.value}="${t.key === 'service.name' ? 'ws-service' : 'x'}"`).join(', ');
  return t2m.queries.map((q) => {
    const expr = provisioned(q.query);
    assert.ok(expr.includes('$__tags'), `${q.name}: filtered by the span's tags`);
    return { where: `Jaeger trace-to-metrics "${q.name}"`, expr: expr.replaceAll('$__tags', tags), instant: false };
  });
}

// ---- PromQL text ------------------------------------------------------------------------

/** Grafana's regex escape of one value of a multi-value variable in a Prometheus query. */
function grafanaRegexEscape(value: string): string {
  return value.replace(/[$^*{}[\]'+?.()|\\]/g, '\\\\$&');
}

/** Substitutes Grafana's variables ($name, ${name}, ${name:format}); an unknown one is a failure. */
function substitute(expr: string, vars: Record<string, string>): string {
  return expr.replace(/\$\{(\w+)(?::\w+)?\}|\$(\w+)/g, (whole, braced?: string, bare?: string) => {
    const name = (braced ?? bare)!;
    assert.ok(name in vars, `unknown variable ${whole} in ${expr}`);
    return vars[name];
  });
}

const KEYWORDS = new Set(['by', 'without', 'on', 'ignoring', 'group_left', 'group_right', 'offset', 'bool', 'and', 'or', 'unless', 'inf', 'nan']);

/** The metric names a PromQL expression selects (not functions, labels, keywords or numbers). */
function metricNames(expr: string): string[] {
  const text = expr
    .replace(/"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|`[^`]*`/g, '""')
    .replace(/\{[^}]*\}/g, '{}')
    .replace(/\[[^\]]*\]/g, '[]')
    .replace(/\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)/g, ' ');
  const names = new Set<string>();
  for (const match of text.matchAll(/(?<![\w:.])([a-zA-Z_:][\w:]*)(?![\w:])(?!\s*\()/g)) {
    if (!KEYWORDS.has(match[1].toLowerCase())) names.add(match[1]);
  }
  return [...names];
}

// ---- documentation the tests read -------------------------------------------------------

/** The backticked names in the first column of the table under `heading` in `file`. */
function documentedTable(file: string, heading: string): string[] {
  const lines = readRepoFile(file).split('\n');
  const start = lines.findIndex((l) => /^#+ /.test(l) && l.replace(/^#+ /, '') === heading);
  assert.ok(start >= 0, `${file} has a "${heading}" section`);
  const names: string[] = [];
  let inTable = false;
  for (const line of lines.slice(start + 1)) {
    if (/^#+ /.test(line)) break;
    if (line.startsWith('|')) {
      inTable = true;
      const first = line.split('|')[1];
      for (const m of first.matchAll(/`([a-zA-Z_:][\w:]*)`/g)) names.push(m[1]);
    } else if (inTable) break;
  }
  assert.ok(names.length > 0, `${file}, "${heading}": a table of names`);
  return names;
}

/** Every series name docs/telemetry.md's metric tables give (histograms with their _bucket, _sum, _count). */
function telemetryDocNames(): Set<string> {
  const names = new Set<string>();
  for (const line of readRepoFile('docs/telemetry.md').split('\n')) {
    const cells = line.split('|').map((c) => c.trim());
    if (cells.length < 4 || !/\b(gauge|counter|histogram)\b/.test(cells[2])) continue;
    for (const m of cells[1].matchAll(/`([a-zA-Z][\w:]*)`/g)) {
      names.add(m[1]);
      if (/histogram/.test(cells[2])) for (const suffix of ['_bucket', '_sum', '_count']) names.add(m[1] + suffix);
    }
  }
  return names;
}

const NOT_FROM_SERVICE = 'Series the dashboard reads that the service does not export';
const NOT_ON_DASHBOARD = 'Metrics not on the dashboard';

// ---- static checks ----------------------------------------------------------------------

describe('the dashboard file and its provisioning', () => {
  test('the dashboard is current Grafana JSON: schemaVersion 39 or later, unique panel ids, panels inside the 24-column grid', () => {
    const d = dashboard();
    assert.equal(d.uid, 'ws-service');
    assert.ok(d.schemaVersion >= 39, `schemaVersion ${d.schemaVersion}`);
    const panels = allPanels(d);
    const ids = panels.map((p) => p.id);
    assert.equal(new Set(ids).size, ids.length, 'panel ids are unique');
    for (const p of panels) assert.ok(p.gridPos.x >= 0 && p.gridPos.x + p.gridPos.w <= 24, `${p.title} fits the grid`);
    assert.ok(panels.some((p) => p.type === 'row' && p.collapsed && (p.panels ?? []).length > 0), 'a collapsed row carries its own panels');
    assert.ok(panelQueries(d).length > 40);
  });

  test('the provisioning YAML parses; every data source uid the dashboard uses is provisioned', () => {
    const providers = readYaml<{ apiVersion: number; providers: { type: string; options: { path: string } }[] }>(PROVIDERS);
    assert.equal(providers.apiVersion, 1);
    assert.equal(providers.providers.length, 1);
    assert.equal(providers.providers[0].type, 'file');
    const sources = datasources();
    const uids = new Map(sources.map((ds) => [ds.uid, ds.type]));
    assert.equal(uids.size, sources.length, 'data source uids are unique');
    assert.equal(uids.get('prometheus'), 'prometheus');
    assert.equal(uids.get('jaeger'), 'jaeger');
    assert.deepEqual(sources.filter((ds) => ds.isDefault).map((ds) => ds.uid), ['prometheus']);

    // Every data source reference anywhere in the dashboard, including those inside link URLs.
    const d = dashboard();
    const refs: DatasourceRef[] = [];
    const walk = (node: unknown): void => {
      if (Array.isArray(node)) return node.forEach(walk);
      if (node === null || typeof node !== 'object') return;
      const obj = node as Record<string, unknown>;
      if (obj.datasource && typeof obj.datasource === 'object') refs.push(obj.datasource);
      Object.values(obj).forEach(walk);
    };
    walk(d);
    for (const link of [...d.links, ...allPanels(d).flatMap((p) => p.fieldConfig?.defaults?.links ?? [])]) {
      const panes = new URL(link.url, 'http://grafana.invalid').searchParams.get('panes');
      if (panes) walk(JSON.parse(panes.replaceAll('${__from}', '0').replaceAll('${__to}', '1')));
    }
    assert.ok(refs.length > 50);
    for (const ref of refs) {
      if (ref.uid === '-- Grafana --') continue;
      assert.ok(ref.uid && uids.has(ref.uid), `data source uid ${ref.uid} is provisioned`);
      if (ref.type) assert.equal(ref.type, uids.get(ref.uid), `uid ${ref.uid} is a ${uids.get(ref.uid)} data source`);
    }
    const explore = refs.filter((r) => r.type === 'jaeger');
    assert.ok(explore.length > 0, 'links open the Jaeger data source');
  });

  test('provisioning strings survive Grafana\'s environment expansion: every literal $ is written $$', () => {
    const strings: string[] = [];
    const walk = (node: unknown): void => {
      if (typeof node === 'string') strings.push(node);
      else if (Array.isArray(node)) node.forEach(walk);
      else if (node && typeof node === 'object') Object.values(node).forEach(walk);
    };
    walk(readYaml(DATASOURCES));
    walk(readYaml(PROVIDERS));
    for (const s of strings) provisioned(s);
    assert.ok(strings.some((s) => s.includes('$$__tags')), 'the trace-to-metrics queries escape $__tags');
  });

  test("the data sources agree with the stack: Prometheus's timeInterval is the scrape interval, trace-to-metrics targets the Prometheus uid", () => {
    const prom = datasources().find((ds) => ds.uid === 'prometheus')!;
    const global = readYaml<{ global: { scrape_interval: string } }>('otel/prometheus.yml').global;
    assert.equal(prom.jsonData?.timeInterval, global.scrape_interval, "$__rate_interval is built on Prometheus's scrape interval");
    const jaeger = datasources().find((ds) => ds.uid === 'jaeger')!;
    assert.equal(jaeger.jsonData?.tracesToMetrics?.datasourceUid, 'prometheus');
    // service.name becomes the scrape job: the job the dashboard and the rules filter on.
    assert.deepEqual(jaeger.jsonData?.tracesToMetrics?.tags, [{ key: 'service.name', value: 'job' }]);
    assert.ok(traceToMetricsQueries().length >= 3);
  });

  test('every time series panel links to the traces of ws-service: Jaeger UI search and Grafana Explore', () => {
    const d = dashboard();
    const timeseries = allPanels(d).filter((p) => p.type === 'timeseries');
    assert.ok(timeseries.length > 20);
    for (const p of [{ title: 'dashboard links', fieldConfig: { defaults: { links: d.links } } } as Panel, ...timeseries]) {
      const links = p.fieldConfig?.defaults?.links ?? [];
      const ui = links.map((l) => new URL(l.url, 'http://grafana.invalid')).find((u) => u.pathname === '/search' && u.port === '16686');
      assert.ok(ui, `${p.title}: a Jaeger UI search link`);
      assert.equal(ui.searchParams.get('service'), 'ws-service');
      // Jaeger's start/end are microseconds: Grafana's ${__from}/${__to} (milliseconds) then 000.
      assert.equal(ui.searchParams.get('start'), '${__from}000');
      assert.equal(ui.searchParams.get('end'), '${__to}000');
      const explore = links.find((l) => l.url.startsWith('/explore?'));
      assert.ok(explore, `${p.title}: a Grafana Explore link`);
      const panes = JSON.parse(new URL(explore.url, 'http://grafana.invalid').searchParams.get('panes')!) as Record<
        string,
        { datasource: string; queries: { queryType: string; service: string }[]; range: { from: string; to: string } }
      >;
      const pane = Object.values(panes)[0];
      assert.equal(pane.datasource, 'jaeger');
      assert.deepEqual([pane.queries[0].queryType, pane.queries[0].service], ['search', 'ws-service']);
      assert.deepEqual(pane.range, { from: '${__from}', to: '${__to}' });
    }
  });

  test('every alert rule in otel/rules is shown on an alert panel, beside the panels it concerns', () => {
    const rules = readdirSync(repoPath('otel/rules'))
      .filter((f) => f.endsWith('.rules.yml'))
      .flatMap((f) => readYaml<{ groups: { rules: { alert?: string }[] }[] }>(`otel/rules/${f}`).groups.flatMap((g) => g.rules))
      .flatMap((r) => (r.alert ? [r.alert] : []));
    assert.ok(rules.length >= 9);
    const alertPanels = allPanels(dashboard()).filter((p) => (p.targets ?? []).some((t) => t.expr?.includes('ALERTS{')));
    assert.ok(alertPanels.length >= 4);
    const patterns = alertPanels.map((p) => {
      const found = [...new Set((p.targets ?? []).flatMap((t) => [...t.expr!.matchAll(/alertname=~"([^"]+)"/g)].map((m) => m[1])))];
      assert.equal(found.length, 1, `${p.title}: one alertname pattern`);
      // Prometheus anchors regex matchers at both ends.
      return { title: p.title, re: new RegExp(`^(?:${found[0]})$`) };
    });
    for (const rule of rules) {
      assert.ok(patterns.some((p) => p.re.test(rule)), `alert ${rule} is on an alert panel`);
    }
  });
});

// ---- against a real Prometheus ----------------------------------------------------------

interface PromResponse<T> {
  status: 'success' | 'error';
  errorType?: string;
  error?: string;
  data: T;
}
type Series = { metric: Record<string, string>; value?: [number, string]; values?: [number, string][] };

let instances: RunningService[] = [];
let receiver: OtlpReceiver;
let collector: Server;
let prometheus: PrometheusServer | undefined;
let api: string;
let dir: string;
let startedAt: number;
let shutdownPush: ReceivedMetric;
let traffic: { stop: () => Promise<void> }[] = [];

async function prom<T>(path: string, params: Record<string, string>): Promise<PromResponse<T>> {
  // GET, as Prometheus 2.42's label values endpoint takes nothing else.
  const res = await fetch(`${api}${path}?${new URLSearchParams(params).toString()}`);
  return (await res.json()) as PromResponse<T>;
}

async function run(expr: string, instant: boolean, rangeStart: number): Promise<Series[]> {
  const now = Date.now() / 1000;
  const res = instant
    ? await prom<{ result: Series[] }>('/api/v1/query', { query: expr, time: String(now) })
    : await prom<{ result: Series[] }>('/api/v1/query_range', { query: expr, start: String(rangeStart), end: String(now), step: String(SCRAPE_S) });
  assert.equal(res.status, 'success', `${expr}\n  ${res.errorType}: ${res.error}`);
  return res.data.result;
}

function finiteValues(series: Series[]): number[] {
  return series.flatMap((s) => (s.values ?? (s.value ? [s.value] : [])).map(([, v]) => Number(v))).filter((v) => Number.isFinite(v));
}

/** The series name of each resource attribute, as the collector's Prometheus exporter writes them. */
function labelValue(value: AttributeValue): string {
  const text = typeof value === 'string' ? value : JSON.stringify(value);
  return text.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n');
}

/**
 * What the collector's Prometheus exporter serves for one process's final push, with
 * otel/collector.yaml's settings: the histogram under its own name (no unit suffix),
 * job = service.name, instance = service.instance.id, the other resource attributes on target_info.
 */
function collectorExposition(m: ReceivedMetric): string {
  const job = m.resource['service.name'];
  const instance = m.resource['service.instance.id'];
  assert.ok(typeof job === 'string' && typeof instance === 'string');
  const labels = `instance="${labelValue(instance)}",job="${labelValue(job)}"`;
  const [point] = m.points;
  assert.ok(point.bucketCounts && point.explicitBounds && point.count !== undefined && point.sum !== undefined);
  let cumulative = 0;
  const buckets = point.explicitBounds.map((le, i) => {
    cumulative += point.bucketCounts![i];
    return `shutdown_duration_bucket{${labels},le="${le}"} ${cumulative}`;
  });
  const info = Object.entries(m.resource)
    .filter(([k]) => k !== 'service.name' && k !== 'service.instance.id')
    .map(([k, v]) => `${k.replace(/[^\w]/g, '_')}="${labelValue(v)}"`)
    .join(',');
  return [
    '# HELP shutdown_duration Time taken during graceful shutdown',
    '# TYPE shutdown_duration histogram',
    ...buckets,
    `shutdown_duration_bucket{${labels},le="+Inf"} ${point.count}`,
    `shutdown_duration_sum{${labels}} ${point.sum}`,
    `shutdown_duration_count{${labels}} ${point.count}`,
    '# HELP target_info Target metadata',
    '# TYPE target_info gauge',
    `target_info{${labels},${info}} 1`,
    '',
  ].join('\n');
}

/** Connections, pings, echoes, client errors, and channel traffic on one instance until stopped. */
async function startTraffic(svc: RunningService): Promise<{ stop: () => Promise<void> }> {
  const subscribers = await Promise.all([Client.connect(svc.wsUrl), Client.connect(svc.wsUrl)]);
  for (const [i, channel] of CHANNELS.entries()) {
    for (const s of subscribers) assert.equal((await s.request({ type: 'subscribe', id: `s${i}`, channel })).type, 'subscribed');
  }
  const publisher = await Client.connect(svc.wsUrl);
  // Refusals, once each: an upgrade on an unknown path, a request with a body, a bad channel name.
  assert.equal((await attemptUpgrade(`ws://127.0.0.1:${svc.port}/not-the-ws-path`)).status, 404);
  assert.equal((await fetch(`${svc.baseUrl}/healthz`, { method: 'POST', body: 'x' })).status, 413);
  assert.equal((await publisher.request({ type: 'publish', id: 'bad', channel: 'no-namespace', data: 1 })).code, 'bad_channel');

  let running = true;
  let failure: Error | undefined;
  const loop = (async () => {
    for (let n = 0; running; n++) {
      assert.equal((await publisher.request({ type: 'ping', id: n })).type, 'pong');
      assert.equal((await publisher.request({ type: 'echo', id: n, data: { n } })).type, 'echo');
      assert.equal((await publisher.request({ type: 'publish', id: n, channel: CHANNELS[n % CHANNELS.length], data: n })).type, 'published');
      if (n % 4 === 0) assert.equal((await publisher.request('not json')).code, 'bad_request');
      if (n % 6 === 0) assert.equal((await publisher.request({ type: 'no-such-type', id: n })).code, 'unknown_type');
      if (n % 5 === 0) {
        const brief = await Client.connect(svc.wsUrl);
        await brief.request({ type: 'ping', id: n });
        // A reconnect that recovers the last two publications, and one from an epoch long gone.
        // Replayed messages arrive between replies: each reply is found by its id.
        const ask = async (message: { id: string } & Record<string, unknown>): Promise<Record<string, unknown>> => {
          brief.send(message);
          return eventually(() => brief.replies.find((r) => r.id === message.id), 5000, `the reply to ${message.id}`);
        };
        const channel = CHANNELS[n % CHANNELS.length];
        const top = await ask({ type: 'subscribe', id: `t${n}`, channel });
        await ask({ type: 'unsubscribe', id: `u${n}`, channel });
        const since = { epoch: top.epoch, offset: Math.max(0, Number(top.offset) - 2) };
        assert.equal((await ask({ type: 'subscribe', id: `r${n}`, channel, since })).recovered, true);
        await ask({ type: 'unsubscribe', id: `v${n}`, channel });
        assert.equal((await ask({ type: 'subscribe', id: `x${n}`, channel, since: { epoch: 'abc', offset: 1 } })).recovered, false);
        await brief.close();
      }
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  })().catch((err: unknown) => {
    // Kept for stop(): a reply that went wrong fails the file there, not as an unhandled rejection.
    failure = err instanceof Error ? err : new Error(String(err));
  });
  return {
    async stop() {
      running = false;
      await loop;
      await Promise.all([publisher, ...subscribers].map((c) => c.close()));
      if (failure) throw failure;
    },
  };
}

async function startPrometheus(collectorPort: number): Promise<void> {
  // otel/prometheus.yml as written, but for its targets (these processes) and its intervals.
  const config = readYaml<{
    global: Record<string, string>;
    scrape_configs: { job_name: string; static_configs: { targets: string[] }[] }[];
  }>('otel/prometheus.yml');
  config.global.scrape_interval = `${SCRAPE_S}s`;
  config.global.scrape_timeout = `${SCRAPE_S}s`;
  config.global.evaluation_interval = `${SCRAPE_S}s`;
  const targets: Record<string, string[]> = {
    'ws-service': instances.map((s) => `127.0.0.1:${s.port}`),
    'otel-collector': [`127.0.0.1:${collectorPort}`],
  };
  assert.deepEqual(config.scrape_configs.map((j) => j.job_name).sort(), Object.keys(targets).sort(), 'the jobs of otel/prometheus.yml');
  for (const job of config.scrape_configs) job.static_configs = [{ targets: targets[job.job_name] }];
  dir = mkdtempSync(join(tmpdir(), 'ws-service-dashboard-'));
  writeFileSync(join(dir, 'prometheus.yml'), stringify(config));
  symlinkSync(repoPath('otel/rules'), join(dir, 'rules'));

  prometheus = await PrometheusServer.start(dir, 30_000);
  api = prometheus.api;
}

before(async () => {
  requireBinary('prometheus');
  receiver = await startOtlpReceiver();
  const env = {
    SHUTDOWN_DRAIN_DELAY_MS: '0',
    SHUTDOWN_TIMEOUT_MS: '2000',
    CHANNEL_NAMESPACES: 'chat,news',
    // Spans exported to a real OTLP endpoint, so the batch span processor's own series exist.
    OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: `${receiver.url}/v1/traces`,
    OTEL_BSP_SCHEDULE_DELAY: '200',
  };
  // A third instance that only lives to shut down: its final OTLP push carries shutdown_duration.
  const [a, b, gone] = await Promise.all([
    startChild(env),
    startChild(env),
    startChild({ SHUTDOWN_DRAIN_DELAY_MS: '0', OTEL_EXPORTER_OTLP_METRICS_ENDPOINT: `${receiver.url}/v1/metrics`, OTEL_METRIC_EXPORT_INTERVAL: '600000' }),
  ]);
  instances = [a, b];
  gone.child.kill('SIGTERM');
  assert.equal((await withTimeout(gone.exited, 10_000, 'the third instance to exit')).code, 0);
  shutdownPush = await eventually(() => receiver.metrics.find((m) => m.name === 'shutdown_duration' && m.points.length === 1), 5000, 'the pushed shutdown_duration');

  collector = createServer((req, res) => {
    if (req.url !== '/metrics') return void res.writeHead(404).end();
    res.writeHead(200, { 'Content-Type': 'text/plain; version=0.0.4; charset=utf-8' }).end(collectorExposition(shutdownPush));
  });
  await new Promise<void>((resolve) => collector.listen(0, '127.0.0.1', resolve));
  startedAt = Math.floor(Date.now() / 1000);
  await startPrometheus((collector.address() as { port: number }).port);

  // No connections yet: the original NoActiveConnections rule goes pending on both, which the
  // serving alerts panel must show. Then traffic makes every other panel move.
  await eventually(
    async () => ((await run('count(ALERTS{alertname="NoActiveConnections", alertstate="pending"})', true, startedAt))[0]?.value?.[1] === '2' ? true : undefined),
    30_000,
    'NoActiveConnections pending on both instances',
  );
  traffic = await Promise.all(instances.map((svc) => startTraffic(svc)));
  // Until the series traffic creates have been scraped from both instances several times: a
  // rate() over a series born one scrape ago has nothing to compute from yet.
  const born = ['message_processing_duration_seconds_count', 'connection_duration_seconds_count', 'channel_delivery_lag_seconds_count', 'otel_sdk_processor_span_processed_total'];
  let seen: Record<string, string | undefined> = {};
  await eventually(
    async () => {
      seen = {};
      for (const name of born) {
        const instancesWith = await run(`count(count by (instance) (${name}{job="ws-service"}))`, true, startedAt);
        const fewest = await run(`min(count_over_time(${name}{job="ws-service"}[1m]))`, true, startedAt);
        seen[name] = `${instancesWith[0]?.value?.[1]} instances, fewest samples ${fewest[0]?.value?.[1]}`;
        if (instancesWith[0]?.value?.[1] !== '2' || !(Number(fewest[0]?.value?.[1]) >= 5)) return undefined;
      }
      return true;
    },
    30_000,
    'the series of the traffic scraped five times from both instances',
  ).catch((err: Error) => {
    throw new Error(`${err.message}: ${JSON.stringify(seen)}`);
  });
});

after(async () => {
  // Whatever fails on the way, the service processes are killed: a live child keeps npm test waiting.
  try {
    await Promise.all(traffic.map((t) => t.stop()));
    await prometheus?.stop();
    collector?.close();
    await receiver?.close();
  } finally {
    await killChildren();
    if (dir) rmSync(dir, { recursive: true, force: true });
  }
});

describe('every query against a real Prometheus scraping two instances', () => {
  /** Grafana's variables: `instance` and `namespace` as selected, the built-ins for a 1 s step over the run so far. */
  function variables(selection: { instance: string; namespace: string }): Record<string, string> {
    const range = `${Math.max(1, Math.ceil(Date.now() / 1000 - startedAt))}s`;
    return { ...selection, __rate_interval: RATE_INTERVAL, __interval: `${SCRAPE_S}s`, __range: range };
  }
  const selections = () => [
    { what: 'All instances, all namespaces', instance: '.*', namespace: '.*' },
    { what: 'one instance, one namespace', instance: grafanaRegexEscape(`127.0.0.1:${instances[1].port}`), namespace: 'chat' },
  ];

  test('every panel, annotation and trace-to-metrics query runs; every panel but the alert states returns data; the core panels show numbers', async () => {
    const queries = [...panelQueries(dashboard()), ...traceToMetricsQueries()];
    for (const selection of selections()) {
      const vars = variables(selection);
      const empty: string[] = [];
      for (const q of queries) {
        const result = await run(substitute(q.expr, vars), q.instant, startedAt);
        const isAlertPanel = q.expr.includes('ALERTS{');
        if (result.length === 0 && !isAlertPanel) empty.push(q.where);
        if (q.panel && CORE_PANELS.includes(q.panel.title)) {
          assert.ok(finiteValues(result).length > 0, `${selection.what}: ${q.where} shows numbers, got ${JSON.stringify(result).slice(0, 2000)}`);
        }
      }
      assert.deepEqual(empty, [], `${selection.what}: queries with no data`);
    }
    // Each core panel exists under its title: renaming one must not silently drop it from this check.
    const titles = allPanels(dashboard()).map((p) => p.title);
    for (const title of CORE_PANELS) assert.ok(titles.includes(title), `core panel "${title}"`);
  });

  test('the alert panels show real alert states: NoActiveConnections was pending on both instances', async () => {
    const panel = allPanels(dashboard()).find((p) => p.title === 'Alerts: serving')!;
    const result = await run(substitute(panel.targets![0].expr!, variables(selections()[0])), false, startedAt);
    const pending = result.filter((s) => s.metric.alertname === 'NoActiveConnections' && (s.values ?? []).some(([, v]) => v === '1'));
    assert.deepEqual(pending.map((s) => s.metric.instance).sort(), instances.map((s) => `127.0.0.1:${s.port}`).sort());
  });

  test('the shutdown table shows the stopped process: its service.instance.id, version and host, and its real duration', async () => {
    const panel = allPanels(dashboard()).find((p) => p.title.startsWith('Shutdowns in this time range'))!;
    const [row, ...rest] = await run(substitute(panel.targets![0].expr!, variables(selections()[0])), true, startedAt);
    assert.deepEqual(rest, []);
    assert.equal(row.metric.instance, shutdownPush.resource['service.instance.id']);
    assert.equal(row.metric.service_version, shutdownPush.resource['service.version']);
    assert.equal(row.metric.host_name, shutdownPush.resource['host.name']);
    assert.equal(Number(row.value![1]), shutdownPush.points[0].sum! / shutdownPush.points[0].count!);
  });

  test('the variables list both instances and every namespace; narrowed to one instance, its own', async () => {
    const d = dashboard();
    const values = async (selector: string, label: string): Promise<string[]> => {
      const res = await prom<string[]>(`/api/v1/label/${label}/values`, { 'match[]': selector, start: String(startedAt), end: String(Date.now() / 1000) });
      assert.equal(res.status, 'success', `${selector}: ${res.error}`);
      return res.data.sort();
    };
    const all = variables(selections()[0]);
    const byName = Object.fromEntries(variableQueries(d).map((v) => [v.name, v]));
    assert.deepEqual(Object.keys(byName).sort(), ['instance', 'namespace']);
    assert.deepEqual(await values(substitute(byName.instance.selector, all), 'instance'), instances.map((s) => `127.0.0.1:${s.port}`).sort());
    assert.deepEqual(await values(substitute(byName.namespace.selector, all), 'namespace'), ['chat', 'news', 'other']);
    assert.deepEqual(await values(substitute(byName.namespace.selector, variables(selections()[1])), 'namespace'), ['chat', 'news', 'other']);
    for (const v of d.templating.list) {
      assert.ok(v.includeAll && v.multi, `${v.name}: multi-value with All`);
      assert.equal(v.allValue, '.*', `${v.name}: All is a regex matching every value, the way the tests substitute it`);
    }
  });

  test("every metric a panel reads is on the service's /metrics or documented as coming from elsewhere; every metric the service exports is on a panel or documented as left off", async () => {
    const d = dashboard();
    const used = new Set([
      ...panelQueries(d).flatMap((q) => metricNames(q.expr)),
      ...variableQueries(d).flatMap((v) => metricNames(v.selector)),
      ...traceToMetricsQueries().flatMap((q) => metricNames(q.expr)),
    ]);
    assert.ok(used.has('active_connections') && used.has('channel_delivery_lag_seconds_bucket') && used.has('ALERTS'), 'the name scan finds names');
    assert.ok(!used.has('rate') && !used.has('le') && !used.has('by') && !used.has('instance'), 'and only names');

    // What both instances expose now: sample names, and each family's type from its # TYPE line.
    const samples = new Set<string>();
    const families = new Map<string, string>();
    for (const svc of instances) {
      const text = await (await fetch(`${svc.baseUrl}/metrics`)).text();
      for (const line of text.split('\n')) {
        const type = /^# TYPE (\S+) (\S+)$/.exec(line);
        if (type) families.set(type[1], type[2]);
        else if (line !== '' && !line.startsWith('#')) samples.add(/^[a-zA-Z_:][\w:]*/.exec(line)![0]);
      }
    }

    // Not from the service's /metrics: each name documented, and each real where it is said to come from.
    const elsewhere = documentedTable('docs/operations.md', NOT_FROM_SERVICE);
    const collectorJob = readYaml<{ scrape_configs: { job_name: string; metric_relabel_configs?: { action: string; regex: string }[] }[] }>(
      'otel/prometheus.yml',
    ).scrape_configs.find((j) => j.job_name === 'otel-collector')!;
    const keep = new RegExp(`^(?:${collectorJob.metric_relabel_configs!.find((r) => r.action === 'keep')!.regex})$`);
    const documented = telemetryDocNames();
    for (const name of elsewhere) {
      assert.ok(used.has(name), `${name} is listed in "${NOT_FROM_SERVICE}" but no panel reads it`);
      assert.ok(!samples.has(name), `${name} is on the service's /metrics: it does not belong in "${NOT_FROM_SERVICE}"`);
      // Through the collector (kept by the otel-collector job's filter): documented in docs/telemetry.md.
      // Otherwise a series Prometheus writes itself (up, ALERTS). Either way, in this Prometheus now.
      if (keep.test(name)) assert.ok(documented.has(name), `${name} comes through the collector and is documented in docs/telemetry.md`);
      const found = await run(`count(last_over_time(${name}[10m]))`, true, startedAt);
      assert.equal(found.length, 1, `${name} is in Prometheus`);
    }
    for (const name of used) {
      assert.ok(samples.has(name) || elsewhere.includes(name), `${name}: on no instance's /metrics and not in docs/operations.md "${NOT_FROM_SERVICE}"`);
    }

    // Coverage: each exported family (a histogram through any of its series) is on a panel, or a documented exception.
    const exceptions = documentedTable('docs/operations.md', NOT_ON_DASHBOARD);
    const seriesOf = (family: string): string[] =>
      families.get(family) === 'histogram' ? [`${family}_bucket`, `${family}_sum`, `${family}_count`] : [family];
    const missing: string[] = [];
    for (const family of families.keys()) {
      const onPanel = seriesOf(family).some((s) => used.has(s));
      if (exceptions.includes(family)) assert.ok(!onPanel, `${family} is on a panel and also listed in "${NOT_ON_DASHBOARD}"`);
      else if (!onPanel) missing.push(family);
    }
    assert.deepEqual(missing, [], `exported but on no panel, and not in docs/operations.md "${NOT_ON_DASHBOARD}"`);
    for (const name of exceptions) assert.ok(families.has(name), `${name} in "${NOT_ON_DASHBOARD}" is not exported (any more)`);
    // The span processor's series exist here (traces are exported): the check covered them.
    assert.ok(families.has('otel_sdk_processor_span_processed_total'));
  });
});
