import { App, Validations } from 'aws-cdk-lib';
import { AwsSolutionsChecks } from 'cdk-nag';
import { LEGACY_INDEXES } from '../common/table-schema';
import { GatehouseStack, type GatehouseStackProps } from '../lib/gatehouse-stack';

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
  const webAuthMode = ctx('webAuthMode');
  if (webAuthMode !== undefined && webAuthMode !== 'session' && webAuthMode !== 'token') {
    throw new Error(`Context webAuthMode must be "session" or "token", not "${webAuthMode}".`);
  }
  const stack = new GatehouseStack(app, ctx('stackName') ?? 'Gatehouse', {
    ...props,
    ...(webAuthMode ? { webAuthMode } : {}),
    description: 'Gatehouse: authenticated WebSockets on API Gateway with Cognito and DynamoDB',
  });
  Validations.of(app).addPlugins(new AwsSolutionsChecks(app));
  return stack;
}
