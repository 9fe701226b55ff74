import { App, Duration, Validations } from 'aws-cdk-lib';
import { AwsSolutionsChecks } from 'cdk-nag';
import { LEGACY_INDEXES } from '../common/table-schema';
import { GatehouseStack, type GatehouseStackProps, type RoomHookSettings } from '../lib/gatehouse-stack';
import { USER_POOL_CLIENT_ID_PATTERN, USER_POOL_ID_PATTERN, type ExistingUserPool } from '../lib/identity';

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
 * Context `userPoolId` and `userPoolClientIds` (`<web client id>[,<session client id>]`): an existing pool to use
 * instead of creating one; both or neither. Only then are the pool-creating keys (`tenants`, `selfSignUp`) refused.
 */
function existingUserPoolFromContext(ctx: (key: string) => string | undefined): ExistingUserPool | undefined {
  const text = (key: string) => (ctx(key) === undefined ? undefined : String(ctx(key)));
  const poolId = text('userPoolId')?.trim();
  const clientIds = text('userPoolClientIds');
  if (poolId === undefined && clientIds === undefined) return undefined;
  if (!poolId || !USER_POOL_ID_PATTERN.test(poolId)) {
    throw new Error(`Context userPoolId must be a Cognito user pool id, <region>_<id> (e.g. eu-west-1_AbCdEf123), not "${poolId ?? ''}".`);
  }
  const ids = (clientIds ?? '').split(',').map((v) => v.trim());
  if (ids.length > 2 || !ids.every((id) => USER_POOL_CLIENT_ID_PATTERN.test(id))) {
    throw new Error(`Context userPoolClientIds must be "<web client id>[,<session client id>]" (Cognito app client ids), not "${clientIds ?? ''}".`);
  }
  const [webClientId, sessionClientId] = ids as [string, string?];
  if (sessionClientId === webClientId) throw new Error('Context userPoolClientIds names the same client twice: the session client must be a second, confidential client.');
  for (const key of ['tenants', 'selfSignUp']) {
    if (ctx(key) !== undefined) throw new Error(`Context ${key} configures a user pool the stack creates; it cannot be combined with userPoolId (manage the existing pool yourself).`);
  }
  return { userPoolId: poolId, webClientId, ...(sessionClientId ? { sessionClientId } : {}) };
}

/**
 * `accessTokenMinutes`: the app clients' access-token validity (created pool), or the longest an existing pool's
 * clients issue (the authorizer refuses tokens that claim a longer life). Cognito allows 5 minutes to 1 day.
 */
function accessTokenValidityFromContext(value: string | undefined): Duration | undefined {
  if (value === undefined) return undefined;
  const minutes = Number(value);
  if (!Number.isInteger(minutes) || minutes < 5 || minutes > 1440) {
    throw new Error(`Context accessTokenMinutes must be a whole number of minutes from 5 to 1440 (Cognito's range), not "${value}".`);
  }
  return Duration.minutes(minutes);
}

/** Context `alarmEmails`: comma-separated addresses subscribed to the alarm topic. */
function alarmEmailsFromContext(emails: string[] | undefined): string[] | undefined {
  const bad = emails?.find((e) => !/^[^\s@,]+@[^\s@,]+\.[^\s@,]+$/.test(e));
  if (bad !== undefined) throw new Error(`Context alarmEmails must be comma-separated email addresses, not "${bad}".`);
  return emails;
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
  const existingUserPool = existingUserPoolFromContext(ctx);
  const accessTokenValidity = accessTokenValidityFromContext(ctx('accessTokenMinutes'));
  const props: GatehouseStackProps = {
    identity: {
      ...(existingUserPool ? { existingUserPool } : { selfSignUpEnabled: flag('selfSignUp', false), tenants: list('tenants') }),
      ...(accessTokenValidity ? { accessTokenValidity } : {}),
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
    operations: {
      alarmEmails: alarmEmailsFromContext(list('alarmEmails')),
    },
  };
  const roomHook = roomHookFromContext(ctx('roomHook'), list('roomHookNamespaces'));
  const webAuthMode = ctx('webAuthMode');
  if (webAuthMode !== undefined && webAuthMode !== 'session' && webAuthMode !== 'token') {
    throw new Error(`Context webAuthMode must be "session" or "token", not "${webAuthMode}".`);
  }
  if (webAuthMode === 'session' && existingUserPool && !existingUserPool.sessionClientId) {
    throw new Error('Context webAuthMode "session" needs a session client: userPoolClientIds=<web client id>,<session client id>.');
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
