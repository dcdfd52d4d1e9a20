import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { parse } from 'yaml';
import { Client, eventually, killChildren, startChild, type RunningService } from './helpers.js';
import { PrometheusServer } from './prometheus-server.js';
import { RedisServer } from './redis-server.js';
import { readRepoFile, repoPath, requireBinary } from './stack-helpers.js';

// Debian's real Prometheus, run with the project's own otel/prometheus.yml and rules, rewritten
// only where it must be: targets on loopback and 1 s intervals instead of 15 s. The ws-service
// job scrapes two real main.js processes sharing a real redis-server, as it scrapes ws-service
// and ws-service-2 in docker-compose.yml; the otel-collector job scrapes a stand-in serving what the
// collector's Prometheus exporter serves under otel/collector.yaml (no collector binary exists
// on these machines): the service's pushed series labelled job/instance from service.name and
// service.instance.id, unsuffixed names, and a finished process's shutdown_duration.

const N_CONNECTIONS = 3;
const M_MESSAGES = 7;
/** The service.instance.id of a process that has already shut down and pushed its last export. */
const GONE_INSTANCE = '3f9d2c4e-8a41-4c55-9e0b-6d2a7f1c0b93';

/** The collector exporter's page for the pushes it holds (otel/collector.yaml's settings). */
function collectorExposition(): string {
  const labels = `instance="${GONE_INSTANCE}",job="ws-service"`;
  const buckets = [0.1, 0.25, 0.5, 1, 2.5, 5, 7.5, 10, 15, 20, 30, 60, 120]
    .map((le) => `shutdown_duration_bucket{${labels},le="${le}"} ${le >= 15 ? 1 : 0}`)
    .join('\n');
  return [
    '# HELP active_connections Number of live WebSocket connections',
    '# TYPE active_connections gauge',
    `active_connections{${labels}} 41`,
    '# HELP total_messages Total messages received across all connections',
    '# TYPE total_messages counter',
    `total_messages{${labels}} 1234`,
    '# HELP shutdown_duration Time taken during graceful shutdown',
    '# TYPE shutdown_duration histogram',
    buckets,
    `shutdown_duration_bucket{${labels},le="+Inf"} 1`,
    `shutdown_duration_sum{${labels}} 10.62`,
    `shutdown_duration_count{${labels}} 1`,
    '# HELP target_info Target metadata',
    '# TYPE target_info gauge',
    `target_info{${labels},service_version="0.1.0"} 1`,
    '',
  ].join('\n');
}

/** An alert's expression as otel/rules/ws-service.rules.yml writes it. */
function alertExpr(name: string): string {
  const { groups } = parse(readRepoFile('otel/rules/ws-service.rules.yml')) as { groups: { rules: { alert?: string; expr: string }[] }[] };
  const rule = groups.flatMap((g) => g.rules).find((r) => r.alert === name);
  assert.ok(rule, `${name} in the rules`);
  return rule.expr;
}

/** Replaces `from` with `to`, insisting it occurs exactly once, so config drift fails loudly. */
function replaceOnce(text: string, from: string, to: string): string {
  const parts = text.split(from);
  assert.equal(parts.length, 2, `expected ${JSON.stringify(from)} exactly once in otel/prometheus.yml`);
  return parts.join(to);
}

interface Sample {
  metric: Record<string, string>;
  value: [number, string];
}
interface Alert {
  labels: Record<string, string>;
  state: 'pending' | 'firing';
}

let svc: RunningService;
/** The second instance: channel deliveries land there, so svc's message counts stay exact. */
let svc2: RunningService;
let redis: RedisServer | undefined;
let collector: Server;
let prometheus: PrometheusServer | undefined;
let api: string;
let dir: string;
let serviceInstance: string;
let serviceInstance2: string;

async function query(expr: string): Promise<Sample[]> {
  const res = await fetch(`${api}/api/v1/query?query=${encodeURIComponent(expr)}`);
  const body = (await res.json()) as { status: string; data: { result: Sample[] }; error?: string };
  assert.equal(body.status, 'success', `${expr}: ${body.error}`);
  return body.data.result;
}

async function activeAlerts(): Promise<Alert[]> {
  const body = (await (await fetch(`${api}/api/v1/alerts`)).json()) as { data: { alerts: Alert[] } };
  return body.data.alerts;
}

function specAlert(alerts: Alert[]): Alert | undefined {
  return alerts.find((a) => a.labels.alertname === 'NoActiveConnections' && a.labels.instance === serviceInstance);
}

/** The one series a query returns, as [labels, value]; undefined until there is exactly one with that value. */
async function single(expr: string, value: number): Promise<Sample | undefined> {
  const result = await query(expr);
  return result.length === 1 && Number(result[0].value[1]) === value ? result[0] : undefined;
}

before(async () => {
  // Fail in milliseconds, not after the readiness deadline below, when the binary is missing.
  requireBinary('prometheus');
  redis = await RedisServer.start();
  svc = await startChild({ SHUTDOWN_DRAIN_DELAY_MS: '0', SHUTDOWN_TIMEOUT_MS: '2000', REDIS_URL: redis.url });
  serviceInstance = `127.0.0.1:${svc.port}`;
  svc2 = await startChild({ SHUTDOWN_DRAIN_DELAY_MS: '0', SHUTDOWN_TIMEOUT_MS: '2000', CHANNEL_NAMESPACES: 'chat', REDIS_URL: redis.url });
  serviceInstance2 = `127.0.0.1:${svc2.port}`;

  collector = createServer((req, res) => {
    if (req.url !== '/metrics') return void res.writeHead(404).end();
    res.writeHead(200, { 'Content-Type': 'text/plain; version=0.0.4; charset=utf-8' }).end(collectorExposition());
  });
  await new Promise<void>((resolve) => collector.listen(0, '127.0.0.1', resolve));
  const collectorPort = (collector.address() as { port: number }).port;

  let config = readRepoFile('otel/prometheus.yml');
  config = replaceOnce(config, "targets: ['ws-service:8080']", `targets: ['${serviceInstance}']`);
  config = replaceOnce(config, "targets: ['ws-service-2:8080']", `targets: ['${serviceInstance2}']`);
  config = replaceOnce(config, "targets: ['otel-collector:8889']", `targets: ['127.0.0.1:${collectorPort}']`);
  config = replaceOnce(config, 'scrape_interval: 15s', 'scrape_interval: 1s');
  config = replaceOnce(config, 'scrape_timeout: 10s', 'scrape_timeout: 1s');
  config = replaceOnce(config, 'evaluation_interval: 15s', 'evaluation_interval: 1s');
  dir = mkdtempSync(join(tmpdir(), 'ws-service-prometheus-'));
  writeFileSync(join(dir, 'prometheus.yml'), config);
  // rule_files are relative to the config file: the project's own rules, unchanged.
  symlinkSync(repoPath('otel/rules'), join(dir, 'rules'));

  prometheus = await PrometheusServer.start(dir);
  api = prometheus.api;
});

after(async () => {
  try {
    await prometheus?.stop();
    collector?.close();
  } finally {
    await killChildren();
    await redis?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  }
});

describe('real Prometheus with otel/prometheus.yml and the alert rules', () => {
  test('loads every rule and scrapes both jobs, both service instances; every rule evaluates without error', async () => {
    await eventually(async () => {
      const up = await query('up == 1');
      const targets = up.map((s) => `${s.metric.job} ${s.metric.instance}`).sort();
      return targets.length === 3 && targets.filter((t) => t.startsWith('ws-service ')).length === 2 && targets.some((t) => t.startsWith('otel-collector '))
        ? true
        : undefined;
    }, 30_000, 'up == 1 for both ws-service instances and otel-collector');
    assert.deepEqual(
      (await query('up{job="ws-service"}')).map((s) => s.metric.instance).sort(),
      [serviceInstance, serviceInstance2].sort(),
    );

    const rules = await eventually(async () => {
      const body = (await (await fetch(`${api}/api/v1/rules`)).json()) as {
        data: { groups: { name: string; rules: { name: string; health: string; lastError?: string }[] }[] };
      };
      const all = body.data.groups.flatMap((g) => g.rules);
      return all.length > 0 && all.every((r) => r.health !== 'unknown') ? all : undefined;
    }, 30_000, 'every rule evaluated once');
    assert.equal(rules.length, 16);
    for (const rule of rules) assert.equal(rule.health, 'ok', `${rule.name}: ${rule.lastError}`);
    // The event-loop rule's series lands under the name it queries.
    const delay = await eventually(async () => (await query('nodejs_eventloop_delay_p99{job="ws-service"}'))[0], 30_000, 'nodejs_eventloop_delay_p99 scraped');
    assert.ok(Number(delay.value[1]) > 0);
  });

  test('with no connections the original alert NoActiveConnections is pending', async () => {
    const alert = await eventually(async () => specAlert(await activeAlerts()), 30_000, 'NoActiveConnections pending');
    assert.equal(alert.state, 'pending');
  });

  test(`after ${N_CONNECTIONS} connections and ${M_MESSAGES} messages the API returns exactly those numbers; the alert clears`, async () => {
    const clients = await Promise.all(Array.from({ length: N_CONNECTIONS }, () => Client.connect(svc.wsUrl)));
    try {
      for (let i = 0; i < M_MESSAGES; i++) {
        const client = clients[i % N_CONNECTIONS];
        const reply = await client.request(i % 2 ? { type: 'echo', id: i, data: i } : { type: 'ping', id: i });
        assert.equal(reply.id, i);
      }

      const connections = await eventually(() => single(`active_connections{instance="${serviceInstance}"}`, N_CONNECTIONS), 20_000, `active_connections == ${N_CONNECTIONS}`);
      assert.deepEqual(connections.metric, { __name__: 'active_connections', job: 'ws-service', instance: serviceInstance });
      const messages = await eventually(() => single(`total_messages_total{instance="${serviceInstance}"}`, M_MESSAGES), 20_000, `total_messages_total == ${M_MESSAGES}`);
      assert.deepEqual(messages.metric, { __name__: 'total_messages_total', job: 'ws-service', instance: serviceInstance });

      await eventually(async () => (specAlert(await activeAlerts()) === undefined ? true : undefined), 20_000, 'NoActiveConnections inactive');
    } finally {
      await Promise.all(clients.map((c) => c.close()));
    }

    await eventually(() => single(`active_connections{instance="${serviceInstance}"}`, 0), 20_000, 'active_connections == 0 after the closes');
    const alert = await eventually(async () => specAlert(await activeAlerts()), 20_000, 'NoActiveConnections pending again');
    assert.equal(alert.state, 'pending', 'pending, not firing: the rule waits 1m');
    assert.equal(Number((await query(`total_messages_total{instance="${serviceInstance}"}`))[0].value[1]), M_MESSAGES);
  });

  test("from the collector only shutdown_duration (and target_info) is kept, one series per process; the forced-shutdown alert fires", async () => {
    const count = await eventually(() => single('shutdown_duration_count', 1), 20_000, 'shutdown_duration_count');
    assert.deepEqual(count.metric, { __name__: 'shutdown_duration_count', job: 'ws-service', instance: GONE_INSTANCE });
    assert.equal((await query('shutdown_duration_bucket')).length, 14);
    assert.equal((await query(`target_info{instance="${GONE_INSTANCE}"}`)).length, 1);
    // What the direct scrape already has is dropped from the collector job: no double counting.
    assert.deepEqual(await query(`active_connections{instance="${GONE_INSTANCE}"}`), []);
    assert.deepEqual(await query('total_messages'), []);
    assert.equal((await query('active_connections')).length, 2, 'one series per live instance, none from the collector');

    const forced = await eventually(
      async () => (await activeAlerts()).find((a) => a.labels.alertname === 'WsServiceShutdownForced' && a.state === 'firing'),
      20_000,
      'WsServiceShutdownForced firing',
    );
    assert.equal(forced.labels.instance, GONE_INSTANCE);
    assert.equal(forced.labels.severity, 'critical');
    assert.equal((await activeAlerts()).find((a) => a.labels.alertname === 'WsServiceShutdownSlow'), undefined);
  });

  test('the channel rules find their series as the services export them: broker up on both, lag by namespace across instances, drops by reason', async () => {
    const up = await eventually(async () => {
      const result = await query('channel_broker_up{job="ws-service"} == 1');
      return result.length === 2 ? result : undefined;
    }, 20_000, 'channel_broker_up == 1 on both instances');
    assert.deepEqual(up.map((s) => s.metric.instance).sort(), [serviceInstance, serviceInstance2].sort());

    // Subscribed on the second instance, published on the first: the delivery crosses Redis.
    const subscriber = await Client.connect(svc2.wsUrl);
    const publisher = await Client.connect(svc.wsUrl);
    // The lag rule's own expression, less its threshold: one p99 for the instance and namespace.
    const lagExpr = alertExpr('WsServiceChannelDeliveryLagHigh').replace(/ > 1$/, '');
    let p99: Sample;
    try {
      assert.equal((await subscriber.request({ type: 'subscribe', id: 1, channel: 'chat:e2e' })).type, 'subscribed');
      // The histogram's series are born with the first delivery, and rate() needs a rise after
      // that: publish until a scrape has seen one.
      let id = 0;
      p99 = await eventually(async () => {
        assert.equal((await publisher.request({ type: 'publish', id: ++id, channel: 'chat:e2e', data: id })).type, 'published');
        const result = (await query(lagExpr)).filter((s) => s.metric.instance === serviceInstance2 && s.metric.namespace === 'chat');
        return result.length === 1 && Number.isFinite(Number(result[0].value[1])) ? result[0] : undefined;
      }, 30_000, 'a p99 delivery lag for namespace chat');
      assert.ok(subscriber.replies.some((r) => r.type === 'message'), 'delivered across the instances');
    } finally {
      await Promise.all([subscriber.close(), publisher.close()]);
    }
    assert.ok(Number(p99.value[1]) < 1, `p99 ${p99.value[1]} s on an idle loopback`);
    // The drop series exist at 0 from the first scrape, so rate() sees their first drop.
    const dropped = await query(`channel_deliveries_dropped_total{instance="${serviceInstance2}"}`);
    assert.deepEqual(dropped.filter((s) => s.metric.namespace === 'chat').map((s) => s.metric.reason).sort(), ['not_open', 'slow_subscriber']);
    const active = await activeAlerts();
    assert.deepEqual(active.filter((a) => a.labels.alertname.startsWith('WsServiceChannel') || a.labels.alertname === 'WsServiceBrokerSubscriberDropped'), []);
  });

  test('Redis closing the subscriber connection fires WsServiceBrokerSubscriberDropped for that instance at once', async () => {
    const subscriber = await Client.connect(svc2.wsUrl);
    try {
      assert.equal((await subscriber.request({ type: 'subscribe', id: 1, channel: 'chat:kill' })).type, 'subscribed');
      // What client-output-buffer-limit does to a slow reader, without waiting for one: only the
      // subscriber connection goes; the command connection stays up.
      await redis!.command('CLIENT', 'KILL', 'TYPE', 'pubsub');
      const fired = await eventually(
        async () => (await activeAlerts()).find((a) => a.labels.alertname === 'WsServiceBrokerSubscriberDropped' && a.state === 'firing'),
        30_000,
        'WsServiceBrokerSubscriberDropped firing',
      );
      assert.equal(fired.labels.instance, serviceInstance2);
      assert.equal(fired.labels.kind, 'subscriber_dropped');
    } finally {
      await subscriber.close();
    }
  });

  test('Redis gone: channel_broker_up drops to 0 on both instances and WsServiceChannelBrokerDown is pending for each (it waits 2m)', async () => {
    await redis!.kill9();
    const pending = await eventually(async () => {
      const alerts = (await activeAlerts()).filter((a) => a.labels.alertname === 'WsServiceChannelBrokerDown');
      return alerts.length === 2 ? alerts : undefined;
    }, 30_000, 'WsServiceChannelBrokerDown for both instances');
    assert.deepEqual(pending.map((a) => a.labels.instance).sort(), [serviceInstance, serviceInstance2].sort());
    for (const alert of pending) assert.equal(alert.state, 'pending');
    // Still ready, still scraped: the broker outage is the alert's to report, not the balancer's.
    const up = await query('up{job="ws-service"} == 1');
    assert.equal(up.length, 2);
  });
});
