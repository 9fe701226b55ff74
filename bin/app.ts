import { App, Validations } from 'aws-cdk-lib';
import { AwsSolutionsChecks } from 'cdk-nag';
import { GatehouseStack, type GatehouseStackProps } from '../lib/gatehouse-stack';

/**
 * Composes the app from context (`cdk.json`, or `-c key=value` on the command line) and applies the cdk-nag
 * AwsSolutions checks to all of it: an unacknowledged finding fails the synth. Tests build the app the same way.
 */
export function buildApp(app: App): GatehouseStack {
  const ctx = (key: string): string | undefined => app.node.tryGetContext(key);
  const props: GatehouseStackProps = {
    identity: {
      selfSignUpEnabled: ctx('selfSignUp') === 'true',
      tenants: ctx('tenants')?.split(',').map((t) => t.trim()).filter(Boolean),
    },
    realtime: {
      allowTokenInQueryString: ctx('allowQueryToken') !== 'false',
    },
    publishing: {
      publisherArns: ctx('publishers')?.split(',').map((a) => a.trim()).filter(Boolean),
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
