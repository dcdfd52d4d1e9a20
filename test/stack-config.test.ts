import assert from 'node:assert/strict';
import { readdirSync } from 'node:fs';
import { builtinModules } from 'node:module';
import { after, before, describe, test } from 'node:test';
import { parse } from 'yaml';
import { killChildren, startChild, type RunningService } from './helpers.js';
import { durationMs, freePort, readRepoFile, readYaml, repoPath, run } from './stack-helpers.js';

// What an operator deploys beside the service, checked with the real tools: promtool on the
// Prometheus config and rules, docker-compose on the compose file, and the facts that tie the
// files together (service names, ports, grace period, the healthcheck).

interface Rule {
  alert?: string;
  record?: string;
  expr: string;
  for?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
}
interface RuleFile {
  groups: { name: string; rules: Rule[] }[];
}
interface RuleTestFile {
  rule_files: string[];
  tests: { alert_rule_test?: { alertname: string; exp_alerts: unknown[] }[] }[];
}
interface ScrapeConfig {
  job_name: string;
  honor_labels?: boolean;
  static_configs: { targets: string[] }[];
  metric_relabel_configs?: { source_labels: string[]; regex: string; action: string }[];
}
interface PrometheusConfig {
  rule_files: string[];
  scrape_configs: ScrapeConfig[];
}
interface ComposeService {
  build?: { context: string; dockerfile?: string };
  image?: string;
  environment?: Record<string, string>;
  ports?: { published: number | string; target: number }[];
  volumes?: string[];
  command?: string[];
  healthcheck?: { test: string[] };
  hostname?: string;
  stop_grace_period?: string;
  stop_signal?: string;
  depends_on?: Record<string, unknown>;
}

const RULES = 'otel/rules/ws-service.rules.yml';
/** The service's instances in docker-compose.yml, each with the host port it is published on. */
const INSTANCES: Record<string, number> = { 'ws-service': 8080, 'ws-service-2': 8081 };
/** Where the service listens inside its container (PORT's default; the Dockerfile's EXPOSE). */
const CONTAINER_PORT = 8080;
const RULE_TESTS = 'otel/rules/ws-service.rules.test.yml';

/** The original specification's alert rule, verbatim. */
const ORIGINAL_RULE = `
- alert: NoActiveConnections
  expr: active_connections == 0
  for: 1m
  labels:
    severity: warning
  annotations:
    summary: "No active WebSocket connections for 1 minute"
`;

function alerts(): Rule[] {
  return readYaml<RuleFile>(RULES).groups.flatMap((g) => g.rules);
}

describe('Prometheus config and alert rules', () => {
  test('promtool check config accepts otel/prometheus.yml and the rule files it loads', async () => {
    const { code, stdout, stderr } = await run('promtool', ['check', 'config', 'otel/prometheus.yml']);
    assert.equal(code, 0, stdout + stderr);
    assert.match(stdout, /SUCCESS: 1 rule files found/);
    assert.match(stdout, /SUCCESS: 16 rules found/);
  });

  test('promtool check rules accepts every rule file', async () => {
    const files = readdirSync(repoPath('otel/rules')).filter((f) => f.endsWith('.rules.yml')).map((f) => `otel/rules/${f}`);
    assert.deepEqual(files, [RULES]);
    const { code, stdout, stderr } = await run('promtool', ['check', 'rules', ...files]);
    assert.equal(code, 0, stdout + stderr);
  });

  test('promtool test rules passes, and shows every alert both firing and not firing', async () => {
    const { code, stdout, stderr } = await run('promtool', ['test', 'rules', RULE_TESTS]);
    assert.equal(code, 0, stdout + stderr);
    assert.match(stdout, /SUCCESS/);

    const cases = readYaml<RuleTestFile>(RULE_TESTS).tests.flatMap((t) => t.alert_rule_test ?? []);
    for (const rule of alerts()) {
      const mine = cases.filter((c) => c.alertname === rule.alert);
      assert.ok(mine.some((c) => c.exp_alerts.length > 0), `${rule.alert}: no test shows it firing`);
      assert.ok(mine.some((c) => c.exp_alerts.length === 0), `${rule.alert}: no test shows it not firing`);
    }
  });

  test("the original specification's NoActiveConnections rule is there as the original specification writes it; every rule has a summary and a runbook", () => {
    const [original] = parse(ORIGINAL_RULE) as Rule[];
    const ours = alerts().find((r) => r.alert === 'NoActiveConnections');
    assert.ok(ours, 'NoActiveConnections is missing');
    assert.equal(ours.expr, original.expr);
    assert.equal(ours.for, original.for);
    assert.deepEqual(ours.labels, original.labels);
    assert.equal(ours.annotations?.summary, original.annotations?.summary);
    assert.deepEqual(Object.keys(ours.annotations ?? {}).sort(), ['runbook', 'summary'], 'only a runbook added to the original rule');

    const names = alerts().map((r) => r.alert);
    assert.deepEqual(names, [
      'NoActiveConnections',
      'WsServiceErrorRate',
      'WsServiceDown',
      'OtelCollectorDown',
      'WsServiceShutdownSlow',
      'WsServiceShutdownForced',
      'WsServiceConnectionsNearLimit',
      'WsServiceSpansDropped',
      'WsServiceEventLoopDelayHigh',
      'WsServiceChannelBrokerDown',
      'WsServiceChannelBrokerUnreported',
      'WsServiceChannelDeliveryLagHigh',
      'WsServiceChannelDeliveriesDropped',
      'WsServiceChannelRecoveryFailures',
      'WsServiceChannelGapUnfilled',
      'WsServiceBrokerSubscriberDropped',
    ]);
    for (const rule of alerts()) {
      assert.ok((rule.annotations?.summary ?? '').length > 0, `${rule.alert}: no summary`);
      assert.ok((rule.annotations?.runbook ?? '').length > 20, `${rule.alert}: no runbook`);
      assert.match(rule.labels?.severity ?? '', /^(warning|critical)$/, `${rule.alert}: severity`);
    }
  });

  test('the rules query the names as they land: error_count_total, shutdown_duration_*, max_connections, the span processor\'s drops', () => {
    const expr = (name: string): string => alerts().find((r) => r.alert === name)!.expr;
    assert.match(expr('WsServiceErrorRate'), /\berror_count_total\{job="ws-service"\}/);
    assert.match(expr('WsServiceDown'), /^up\{job="ws-service"\} == 0$/);
    assert.match(expr('WsServiceShutdownSlow'), /shutdown_duration_sum\{job="ws-service"\} \/ shutdown_duration_count/);
    assert.match(expr('WsServiceShutdownForced'), /shutdown_duration_sum\{job="ws-service"\} \/ shutdown_duration_count/);
    assert.equal(expr('WsServiceConnectionsNearLimit'), 'active_connections / (max_connections > 0) > 0.9');
    assert.match(expr('WsServiceSpansDropped'), /^increase\(otel_sdk_processor_span_processed_total\{job="ws-service",error_type="queue_full"\}\[5m\]\) > 0 or \(/);
    assert.equal(expr('WsServiceEventLoopDelayHigh'), 'nodejs_eventloop_delay_p99{job="ws-service"} > 0.1');
  });

  test('the channel rules query the channel metrics by their decided names; not_open drops never alert', () => {
    const rule = (name: string): Rule => alerts().find((r) => r.alert === name)!;
    assert.equal(rule('WsServiceChannelBrokerDown').expr, 'channel_broker_up{job="ws-service"} == 0');
    // The page for a broker outage: /readyz stays 200 by design, so nothing else would.
    assert.equal(rule('WsServiceChannelBrokerDown').labels?.severity, 'critical');
    assert.match(rule('WsServiceChannelBrokerUnreported').expr, /^up\{job="ws-service"\} == 1 unless on\(job, instance\) channel_broker_up\{job="ws-service"\}$/);
    assert.match(rule('WsServiceChannelDeliveryLagHigh').expr, /^histogram_quantile\(0\.99, sum by \(job, instance, namespace, le\) \(rate\(channel_delivery_lag_seconds_bucket\{job="ws-service"\}\[5m\]\)\)\) > 1$/);
    assert.match(rule('WsServiceChannelDeliveriesDropped').expr, /^rate\(channel_deliveries_dropped_total\{job="ws-service",reason!="not_open"\}\[5m\]\) > /);
    assert.match(rule('WsServiceBrokerSubscriberDropped').expr, /^increase\(channel_broker_errors_total\{job="ws-service",kind="subscriber_dropped"\}\[5m\]\) > 0 or \(/);
    assert.match(rule('WsServiceChannelDeliveryLagHigh').annotations?.runbook ?? '', /clock skew/, 'the lag runbook names clock skew');
    assert.match(rule('WsServiceBrokerSubscriberDropped').annotations?.runbook ?? '', /client-output-buffer-limit pubsub .*32mb 8mb 60/);
  });

  test("otel/prometheus.yml: the original specification's job on port 8080 (and the second instance), the collector second, only shutdown_duration kept from it", () => {
    const config = readYaml<PrometheusConfig>('otel/prometheus.yml');
    assert.deepEqual(config.rule_files, ['rules/*.rules.yml']);
    const [service, collector] = config.scrape_configs;
    assert.equal(service.job_name, 'ws-service');
    assert.deepEqual(service.static_configs, [{ targets: ['ws-service:8080'] }, { targets: ['ws-service-2:8080'] }]);
    assert.equal(service.metric_relabel_configs, undefined, 'the direct scrape keeps everything');
    assert.equal(collector.job_name, 'otel-collector');
    assert.equal(collector.honor_labels, true, "job/instance come from the pushing process's resource");
    assert.deepEqual(collector.static_configs, [{ targets: ['otel-collector:8889'] }]);
    assert.deepEqual(collector.metric_relabel_configs, [
      { source_labels: ['__name__'], regex: 'shutdown_duration_(bucket|sum|count)|target_info', action: 'keep' },
    ]);
    // The original specification's job, textually: the quoted job name and the 8080 target.
    assert.match(readRepoFile('otel/prometheus.yml'), /- job_name: 'ws-service'\n {4}static_configs:\n {6}- targets: \['ws-service:8080'\]/);
  });
});

describe('collector config', () => {
  interface Pipeline {
    receivers: string[];
    processors: string[];
    exporters: string[];
  }
  interface CollectorConfig {
    receivers: { otlp: { protocols: { grpc: { endpoint: string }; http: { endpoint: string } } } };
    processors: Record<string, unknown>;
    exporters: Record<string, Record<string, unknown>>;
    service: { pipelines: Record<string, Pipeline> };
  }
  const config = readYaml<CollectorConfig>('otel/collector.yaml');

  test('opens with a comment saying what it is for', () => {
    assert.match(readRepoFile('otel/collector.yaml'), /^# OpenTelemetry Collector for ws-service/);
    assert.match(readRepoFile('otel/prometheus.yml'), /^# Prometheus for ws-service/);
    assert.match(readRepoFile(RULES), /^# Alert rules for ws-service/);
  });

  test('OTLP in on 4317/4318 on all interfaces; memory_limiter first, then batch, in every pipeline', () => {
    assert.equal(config.receivers.otlp.protocols.grpc.endpoint, '0.0.0.0:4317');
    assert.equal(config.receivers.otlp.protocols.http.endpoint, '0.0.0.0:4318');
    assert.deepEqual(Object.keys(config.service.pipelines).sort(), ['logs', 'metrics', 'traces']);
    for (const [name, pipeline] of Object.entries(config.service.pipelines)) {
      assert.deepEqual(pipeline.receivers, ['otlp'], name);
      assert.deepEqual(pipeline.processors, ['memory_limiter', 'batch'], name);
    }
  });

  test('traces to Jaeger over OTLP, metrics to a Prometheus endpoint under the original names, logs to debug', () => {
    const { pipelines } = config.service;
    assert.deepEqual(pipelines.traces.exporters, ['otlp_grpc/jaeger']);
    assert.deepEqual(config.exporters['otlp_grpc/jaeger'], { endpoint: 'jaeger:4317', tls: { insecure: true } });
    assert.deepEqual(pipelines.metrics.exporters, ['prometheus']);
    const prometheus = config.exporters.prometheus;
    assert.equal(prometheus.endpoint, '0.0.0.0:8889');
    // No unit suffix: shutdown_duration lands as shutdown_duration_bucket, which the rules query.
    assert.equal(prometheus.translation_strategy, 'UnderscoreEscapingWithoutSuffixes');
    assert.equal(prometheus.resource_to_telemetry_conversion, undefined, 'job/instance mapping, not every resource attribute as a label');
    assert.deepEqual(pipelines.logs.exporters, ['debug']);
  });
});

/** The Dockerfile's instructions by stage, continuation lines joined. */
function dockerfileStages(): { from: string; instructions: string[] }[] {
  const lines = readRepoFile('Dockerfile')
    .replace(/\\\n\s*/g, '')
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l !== '' && !l.startsWith('#'));
  const stages: { from: string; instructions: string[] }[] = [];
  for (const line of lines) {
    if (line.startsWith('FROM ')) stages.push({ from: line, instructions: [] });
    else stages.at(-1)!.instructions.push(line);
  }
  return stages;
}

function healthcheckCommand(): string[] {
  const runtime = dockerfileStages().at(-1)!;
  const line = runtime.instructions.find((i) => i.startsWith('HEALTHCHECK '));
  assert.ok(line, 'runtime stage has a HEALTHCHECK');
  const json = /\bCMD (\[.*\])$/.exec(line)?.[1];
  assert.ok(json, 'HEALTHCHECK uses the exec form');
  return JSON.parse(json) as string[];
}

describe('Dockerfile', () => {
  test('multi-stage: build with dev dependencies, node:24-slim runtime with production ones only, non-root', () => {
    const stages = dockerfileStages();
    assert.equal(stages.length, 2);
    const [build, runtime] = stages;
    assert.match(build.from, /^FROM node:24-slim AS build$/);
    assert.ok(build.instructions.includes('RUN npm ci --no-audit --no-fund'));
    assert.ok(build.instructions.some((i) => /^RUN npx tsc -p tsconfig\.json$/.test(i)));
    assert.match(runtime.from, /^FROM node:24-slim\b/);
    assert.ok(runtime.instructions.some((i) => /^RUN npm ci --omit=dev\b/.test(i)));
    assert.ok(runtime.instructions.includes('COPY --from=build /app/dist/src ./dist/src'));
    // main.js reads the version from ../../package.json, i.e. /app/package.json.
    assert.ok(runtime.instructions.includes('COPY package.json package-lock.json ./'));
    const user = runtime.instructions.filter((i) => i.startsWith('USER ')).at(-1);
    assert.ok(user && !/^USER (root|0)(:|$)/.test(user), `runs as a non-root user (${user})`);
    assert.ok(runtime.instructions.includes('EXPOSE 8080'));
    assert.ok(runtime.instructions.includes('STOPSIGNAL SIGTERM'));
    assert.equal(runtime.instructions.at(-1), 'CMD ["node", "dist/src/main.js"]');
  });

  test('.dockerignore lets only the build inputs into the context', () => {
    const entries = readRepoFile('.dockerignore').split('\n').filter((l) => l !== '' && !l.startsWith('#'));
    assert.deepEqual(entries, ['*', '!package.json', '!package-lock.json', '!tsconfig.json', '!src/']);
  });

  test('what dist/src imports is all in production dependencies (the runtime stage has no others)', () => {
    const pkg = JSON.parse(readRepoFile('package.json')) as { dependencies: Record<string, string> };
    const builtins = new Set(builtinModules);
    const imported = new Set<string>();
    const dir = 'dist/src';
    const files = readdirSync(repoPath(dir), { recursive: true, encoding: 'utf8' }).filter((f) => f.endsWith('.js'));
    assert.ok(files.includes('main.js') && files.includes('smoke/cli.js'));
    for (const file of files) {
      for (const match of readRepoFile(`${dir}/${file}`).matchAll(/(?:^|\s)(?:import|export)\b[^'"]*?from\s+['"]([^'"]+)['"]|import\(\s*['"]([^'"]+)['"]\s*\)/gm)) {
        const specifier = match[1] ?? match[2];
        if (specifier.startsWith('.') || specifier.startsWith('node:') || builtins.has(specifier)) continue;
        const name = specifier.startsWith('@') ? specifier.split('/').slice(0, 2).join('/') : specifier.split('/')[0];
        imported.add(name);
      }
    }
    assert.ok(imported.has('ws') && imported.has('pino'), 'the scan sees the imports');
    const missing = [...imported].filter((name) => !(name in pkg.dependencies));
    assert.deepEqual(missing, [], 'imported by dist/src but not a production dependency');
  });

  describe('HEALTHCHECK run as the container would', () => {
    let svc: RunningService;
    before(async () => {
      svc = await startChild();
    });
    after(killChildren);

    test('exits 0 against a live service on $PORT and 1 when nothing answers', async () => {
      const [command, ...args] = healthcheckCommand();
      assert.equal(command, 'node', 'node itself: the slim image has no curl');
      assert.match(args.join(' '), /\/healthz/);
      const live = await run(process.execPath, args, { env: { ...process.env, PORT: String(svc.port) }, timeoutMs: 10_000 });
      assert.equal(live.code, 0, live.stderr);
      const dead = await run(process.execPath, args, { env: { ...process.env, PORT: String(await freePort()) }, timeoutMs: 10_000 });
      assert.equal(dead.code, 1, dead.stderr);
    });
  });
});

describe('docker-compose.yml', () => {
  let services: Record<string, ComposeService>;
  before(async () => {
    const checked = await run('docker-compose', ['-f', 'docker-compose.yml', 'config', '-q']);
    assert.equal(checked.code, 0, `docker-compose config -q: ${checked.stderr}`);
    assert.equal(checked.stderr.trim(), '', 'no warnings');
    const resolved = await run('docker-compose', ['-f', 'docker-compose.yml', 'config']);
    assert.equal(resolved.code, 0, resolved.stderr);
    services = (parse(resolved.stdout) as { services: Record<string, ComposeService> }).services;
  });

  test('docker-compose config -q accepts the file; the seven services are there', () => {
    assert.deepEqual(Object.keys(services).sort(), ['grafana', 'jaeger', 'otel-collector', 'prometheus', 'redis', 'ws-service', 'ws-service-2']);
  });

  for (const [name, hostPort] of Object.entries(INSTANCES)) {
    test(`${name}: built from the Dockerfile, OTLP to the collector by name, SIGTERM, grace period above drain + timeout, host port ${hostPort}`, () => {
      const svc = services[name];
      assert.ok(svc.build, 'built from the Dockerfile');
      assert.equal(svc.build.dockerfile ?? 'Dockerfile', 'Dockerfile');
      assert.equal(svc.image, 'ws-service:local', 'one image for every instance');
      const env = svc.environment ?? {};
      assert.equal(env.OTEL_EXPORTER_OTLP_ENDPOINT, 'http://otel-collector:4318');
      assert.equal(env.OTEL_SERVICE_NAME, 'ws-service');
      const drain = Number(env.SHUTDOWN_DRAIN_DELAY_MS);
      const timeout = Number(env.SHUTDOWN_TIMEOUT_MS);
      assert.ok(drain > 0 && timeout > 0, 'drain delay and timeout set explicitly');
      assert.equal(svc.stop_signal, 'SIGTERM');
      assert.ok(svc.stop_grace_period, 'stop_grace_period set');
      const grace = durationMs(svc.stop_grace_period);
      assert.ok(grace > drain + timeout, `stop_grace_period ${grace} ms must exceed drain ${drain} + timeout ${timeout} ms`);
      assert.equal(env.PORT, undefined, `listens on PORT's default, ${CONTAINER_PORT}`);
      assert.deepEqual(svc.ports?.map((p) => [Number(p.published), p.target]), [[hostPort, CONTAINER_PORT]]);
    });

    test(`${name}'s healthcheck is the Dockerfile's: node fetching /healthz`, () => {
      const test = services[name].healthcheck?.test;
      assert.ok(test, 'healthcheck present');
      assert.deepEqual(test, ['CMD', ...healthcheckCommand()]);
    });
  }

  test('every instance exports OTLP to the collector\'s OTLP/HTTP receiver, with its own host.name and its own per-process service.instance.id', () => {
    const collectorConfig = readYaml<{ receivers: { otlp: { protocols: { http: { endpoint: string } } } } }>('otel/collector.yaml');
    const receiverPort = collectorConfig.receivers.otlp.protocols.http.endpoint.split(':')[1];
    const hostnames = new Set<string>();
    for (const name of Object.keys(INSTANCES)) {
      const env = services[name].environment ?? {};
      const endpoint = new URL(env.OTEL_EXPORTER_OTLP_ENDPOINT);
      assert.ok(endpoint.hostname in services && services[endpoint.hostname].image?.startsWith('otel/'), `${name} exports to the collector service`);
      assert.equal(endpoint.port, receiverPort, `${name}: the port the collector's OTLP/HTTP receiver listens on`);
      assert.equal(env.OTEL_EXPORTER_OTLP_PROTOCOL, 'http/protobuf', `${name}: the protocol of that port`);
      assert.ok(services[name].depends_on && 'otel-collector' in services[name].depends_on, `${name} depends on otel-collector`);
      // An id set here would be shared by every process the container ever runs (and the log
      // transport sets its own): each shutdown_duration series needs one per process.
      assert.doesNotMatch(env.OTEL_RESOURCE_ATTRIBUTES ?? '', /service\.instance\.id/, `${name} leaves service.instance.id to the process`);
      assert.ok(services[name].hostname, `${name}: hostname set (host.name in Jaeger)`);
      hostnames.add(services[name].hostname);
    }
    assert.equal(hostnames.size, Object.keys(INSTANCES).length, 'instances tell apart by host.name');
  });

  test('every instance reaches the redis service through REDIS_URL and waits for it to answer', () => {
    const redis = services.redis;
    assert.match(redis.image ?? '', /^redis:7\.\d+\.\d+$/, 'the official image, pinned to a 7.x release');
    assert.ok(redis.healthcheck?.test.includes('redis-cli'), 'a healthcheck the instances can wait on');
    for (const name of Object.keys(INSTANCES)) {
      const url = new URL(services[name].environment?.REDIS_URL ?? '');
      assert.equal(url.protocol, 'redis:');
      assert.equal(url.hostname, 'redis', `${name}: REDIS_URL names the compose service`);
      assert.equal(url.port, '6379', `${name}: Redis's port (the command sets no other)`);
      assert.deepEqual(services[name].depends_on?.redis, { condition: 'service_healthy' }, `${name} depends on redis`);
    }
    assert.ok(!(redis.command ?? []).includes('--port'));
  });

  test('redis keeps nothing: no snapshots, no append-only file, no volume', () => {
    const command = services.redis.command ?? [];
    const flag = (name: string): string | undefined => {
      const i = command.indexOf(name);
      return i < 0 ? undefined : command[i + 1];
    };
    assert.equal(command[0], 'redis-server');
    assert.equal(flag('--save'), '', "--save '' turns off the snapshots Redis takes by default");
    assert.equal(flag('--appendonly'), 'no');
    assert.equal(services.redis.volumes, undefined);
  });

  test('the collector mounts otel/collector.yaml where its command reads it, and reaches jaeger by name', () => {
    const collector = services['otel-collector'];
    assert.match(collector.image ?? '', /^otel\/opentelemetry-collector-contrib:\d+\.\d+\.\d+$/);
    const mount = collector.volumes?.find((v) => v.includes('/otel/collector.yaml:'));
    assert.ok(mount, 'otel/collector.yaml mounted');
    const inside = mount.split(':')[1];
    assert.ok(collector.command?.includes(`--config=${inside}`), `--config=${inside}`);
    const config = readYaml<{ exporters: Record<string, { endpoint?: string }> }>('otel/collector.yaml');
    const [jaegerHost, jaegerPort] = config.exporters['otlp_grpc/jaeger'].endpoint!.split(':');
    assert.ok(jaegerHost in services, `collector exports to ${jaegerHost}, a compose service`);
    assert.equal(jaegerPort, '4317');
  });

  test('jaeger: UI published on 16686', () => {
    const jaeger = services.jaeger;
    assert.match(jaeger.image ?? '', /^jaegertracing\/(jaeger|all-in-one):\d+\.\d+\.\d+$/);
    assert.ok(jaeger.ports?.some((p) => Number(p.published) === 16686 && p.target === 16686));
  });

  test('prometheus: our config and rules mounted where it loads them, UI on 9090, targets are compose services', () => {
    const prom = services.prometheus;
    assert.match(prom.image ?? '', /^prom\/prometheus:v\d+\.\d+\.\d+$/);
    assert.ok(prom.ports?.some((p) => Number(p.published) === 9090 && p.target === 9090));
    const configFlag = prom.command?.find((c) => c.startsWith('--config.file='));
    assert.ok(configFlag, '--config.file given');
    const configInside = configFlag.slice('--config.file='.length);
    const volumes = prom.volumes ?? [];
    assert.ok(volumes.some((v) => v.endsWith(`/otel/prometheus.yml:${configInside}:ro`)), 'otel/prometheus.yml mounted as the config');
    const configDir = configInside.slice(0, configInside.lastIndexOf('/'));
    assert.ok(volumes.some((v) => v.endsWith(`/otel/rules:${configDir}/rules:ro`)), 'otel/rules mounted beside it (rule_files: rules/*.rules.yml)');

    const config = readYaml<PrometheusConfig>('otel/prometheus.yml');
    const serviceTargets = config.scrape_configs.find((j) => j.job_name === 'ws-service')!.static_configs.flatMap((s) => s.targets);
    assert.deepEqual(serviceTargets, Object.keys(INSTANCES).map((name) => `${name}:${CONTAINER_PORT}`), 'every instance scraped, in job ws-service');
    for (const name of Object.keys(INSTANCES)) assert.ok(prom.depends_on && name in prom.depends_on, `prometheus depends on ${name}`);
    const collectorConfig = readYaml<{ exporters: { prometheus: { endpoint: string } } }>('otel/collector.yaml');
    for (const job of config.scrape_configs) {
      for (const target of job.static_configs.flatMap((s) => s.targets)) {
        const [host, port] = target.split(':');
        assert.ok(host in services, `${job.job_name} scrapes ${host}, a compose service`);
        if (host in INSTANCES) assert.equal(port, String(CONTAINER_PORT));
        if (host === 'otel-collector') assert.equal(port, collectorConfig.exporters.prometheus.endpoint.split(':')[1]);
      }
    }
  });
  test('grafana: a pinned grafana-oss image, anonymous read-only (Viewer) access, UI on 3000, provisioning and dashboards mounted read-only where they are read', () => {
    const grafana = services.grafana;
    const major = /^grafana\/grafana-oss:(\d+)\.\d+\.\d+$/.exec(grafana.image ?? '')?.[1];
    assert.ok(major === '11' || major === '12', `grafana/grafana-oss pinned to an 11.x or 12.x release, got ${grafana.image}`);
    assert.ok(grafana.ports?.some((p) => Number(p.published) === 3000 && p.target === 3000));
    const env = grafana.environment ?? {};
    assert.equal(env.GF_AUTH_ANONYMOUS_ENABLED, 'true');
    assert.equal(env.GF_AUTH_ANONYMOUS_ORG_ROLE, 'Viewer');
    const volumes = grafana.volumes ?? [];
    assert.ok(volumes.length > 0 && volumes.every((v) => v.endsWith(':ro')), 'every mount read-only');
    assert.ok(volumes.some((v) => v.endsWith('/otel/grafana/provisioning:/etc/grafana/provisioning:ro')), 'provisioning where Grafana reads it');
    const provider = readYaml<{ providers: { options: { path: string } }[] }>('otel/grafana/provisioning/dashboards/dashboards.yml').providers[0];
    const dashboards = provider.options.path;
    assert.ok(volumes.some((v) => v.endsWith(`/otel/grafana/dashboards:${dashboards}:ro`)), `otel/grafana/dashboards mounted at the provider's path ${dashboards}`);
    // The home page is the ws-service dashboard, one of the mounted files.
    const home = env.GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH ?? '';
    assert.ok(home.startsWith(`${dashboards}/`), `home dashboard ${home} inside ${dashboards}`);
    const file = `otel/grafana/dashboards/${home.slice(dashboards.length + 1)}`;
    assert.ok(readdirSync(repoPath('otel/grafana/dashboards')).includes(home.slice(dashboards.length + 1)), `${file} exists`);
    assert.equal((JSON.parse(readRepoFile(file)) as { uid: string }).uid, 'ws-service');
  });

  test("grafana's data sources reach compose services on their container ports; the dashboard's links use the ports the stack publishes", () => {
    const grafana = services.grafana;
    const sources = readYaml<{ datasources: { type: string; url: string }[] }>('otel/grafana/provisioning/datasources/datasources.yml').datasources;
    assert.deepEqual(sources.map((ds) => ds.type).sort(), ['jaeger', 'prometheus']);
    for (const ds of sources) {
      const url = new URL(ds.url);
      assert.ok(url.hostname in services, `${ds.type} data source at ${url.hostname}, a compose service`);
      assert.ok(services[url.hostname].ports?.some((p) => p.target === Number(url.port)), `${url.hostname} listens on ${url.port}`);
      assert.ok(url.hostname in (grafana.depends_on ?? {}), `grafana depends on ${url.hostname}`);
    }
    // Links open in the operator's browser, on the host: the published ports, for the service the stack names.
    const dashboard = readRepoFile('otel/grafana/dashboards/ws-service.json');
    const published = (name: string): number[] => (services[name].ports ?? []).map((p) => Number(p.published));
    const jaegerLinks = [...dashboard.matchAll(/"url": "http:\/\/localhost:(\d+)\/search\?service=([\w-]+)/g)];
    assert.ok(jaegerLinks.length > 0);
    for (const [, port, service] of jaegerLinks) {
      assert.ok(published('jaeger').includes(Number(port)), `Jaeger UI link on ${port}`);
      assert.equal(service, services['ws-service'].environment?.OTEL_SERVICE_NAME);
    }
    for (const [, port] of dashboard.matchAll(/"url": "http:\/\/localhost:(\d+)\/alerts"/g)) {
      assert.ok(published('prometheus').includes(Number(port)), `Prometheus alerts link on ${port}`);
    }
  });
});
