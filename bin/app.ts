import { App, Validations } from 'aws-cdk-lib';
import { AwsSolutionsChecks } from 'cdk-nag';
import { LEGACY_INDEXES } from '../common/table-schema';
import { GatehouseStack, type GatehouseStackProps, type RoomHookSettings } from '../lib/gatehouse-stack';

/**
 * Context `roomHook`: `sample` (the sample hook, deployed with the stack), the ARN of an existing function, or
 * `none`/empty (no hook); `roomHookNamespaces` names the namespaces it decides (required with a hook).
 */
function roomHookFromContext(hook: string | undefined, namespaces: string[] | undefined): RoomHookSettings | undefined {
  const value = hook?.trim();
  if (!value || value === 'none') return undefined;
  if (!namespaces?.length) throw new Error('Context roomHook needs roomHookNamespaces (comma-separated, e.g. "run").');
  if (value === 'sample') return { namespaces };
  if (!/^arn:aws[a-z-]*:lambda:[a-z0-9-]+:\d{12}:function:[A-Za-z0-9_-]+$/.test(value)) {
    throw new Error(`Context roomHook must be "sample", "none" or a Lambda function ARN (unqualified), not "${value}".`);
  }
  return { namespaces, functionArn: value };
}

/**
 * Composes the app from context (`cdk.json`, or `-c key=value` on the command line) and applies the cdk-nag
 * AwsSolutions checks to all of it: an unacknowledged finding fails the synth. Tests build the app the same way.
 */
export function buildApp(app: App): GatehouseStack {
  const ctx = (key: string): string | undefined => app.node.tryGetContext(key);
  const list = (key: string) => ctx(key)?.split(',').map((v) => v.trim()).filter(Boolean);
  const flag = (key: string, fallback: boolean): boolean => {
    const value = ctx(key);
    if (value === undefined) return fallback;
    if (String(value) !== 'true' && String(value) !== 'false') throw new Error(`Context ${key} must be "true" or "false", not "${value}".`);
    return String(value) === 'true';
  };
  const props: GatehouseStackProps = {
    identity: {
      selfSignUpEnabled: flag('selfSignUp', false),
      tenants: list('tenants'),
    },
    realtime: {
      allowTokenInQueryString: flag('allowQueryToken', true),
      configureAccountLogging: flag('configureAccountLogging', true),
    },
    connections: {
      legacyIndexes: list('legacyIndexes')?.map((name) => {
        if (!(name in LEGACY_INDEXES)) throw new Error(`Context legacyIndexes names indexes of the earlier layout (${Object.keys(LEGACY_INDEXES).join(', ')}), not "${name}".`);
        return name as keyof typeof LEGACY_INDEXES;
      }),
    },
    publishing: {
      publisherArns: list('publishers'),
    },
  };
  const roomHook = roomHookFromContext(ctx('roomHook'), list('roomHookNamespaces'));
  const webAuthMode = ctx('webAuthMode');
  if (webAuthMode !== undefined && webAuthMode !== 'session' && webAuthMode !== 'token') {
    throw new Error(`Context webAuthMode must be "session" or "token", not "${webAuthMode}".`);
  }
  const stack = new GatehouseStack(app, ctx('stackName') ?? 'Gatehouse', {
    ...props,
    ...(webAuthMode ? { webAuthMode } : {}),
    ...(roomHook ? { roomHook } : {}),
    description: 'Gatehouse: authenticated WebSockets on API Gateway with Cognito and DynamoDB',
  });
  Validations.of(app).addPlugins(new AwsSolutionsChecks(app));
  return stack;
}
