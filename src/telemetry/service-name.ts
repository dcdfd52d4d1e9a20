/**
 * service.name for every signal, resolved once and by the SDK's own code: the env detector of
 * @opentelemetry/resources (OTEL_SERVICE_NAME, then `service.name` in OTEL_RESOURCE_ATTRIBUTES),
 * over the service's default. Spans and metrics get it from NodeSDK's resource; the log
 * transport's worker detects its resource separately and lets given attributes win over what it
 * detects, so it is handed this same name.
 */
import { detectResources, envDetector } from '@opentelemetry/resources';
import { ATTR_SERVICE_NAME } from '@opentelemetry/semantic-conventions';

/** The name the environment gives the service, as the SDK reads it; `fallback` when it gives none. */
export function resolveServiceName(fallback: string): string {
  const detected = detectResources({ detectors: [envDetector] }).attributes[ATTR_SERVICE_NAME];
  return typeof detected === 'string' && detected !== '' ? detected : fallback;
}
