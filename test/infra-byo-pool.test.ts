/**
 * "Bring your own user pool": the stack synthesized with an existing Cognito pool and app clients (context
 * `userPoolId` and `userPoolClientIds`, or the `identity.existingUserPool` prop) creates nothing of Cognito, points
 * every credential check at the given ids, scopes IAM to that pool, and refuses input that could not work.
 */
import { readFileSync } from 'node:fs';
import * as path from 'node:path';
import { App } from 'aws-cdk-lib';
import { Match, Template } from 'aws-cdk-lib/assertions';
import { AwsSolutionsChecks } from 'cdk-nag';
import { buildApp } from '../bin/app';
import { GatehouseStack } from '../lib/gatehouse-stack';
import cdkJson from '../cdk.json';

const POOL_ID = 'eu-west-1_AbCdEf123';
const WEB_CLIENT = 'abc123';
const SESSION_CLIENT = 'def456';

function synth(context: Record<string, unknown>) {
  const app = new App({ context: { ...cdkJson.context, ...context } });
  const stack = buildApp(app);
  return { app, stack, template: Template.fromStack(stack) };
}

/** The imported pool's ARN: this stack's partition, region and account, and the given id. */
const poolArn = {
  'Fn::Join': ['', ['arn:', { Ref: 'AWS::Partition' }, ':cognito-idp:', { Ref: 'AWS::Region' }, ':', { Ref: 'AWS::AccountId' }, `:userpool/${POOL_ID}`]],
};

/** Each policy's Cognito actions (its statements together) and the one resource they are on. */
const cognitoStatements = (t: Template) =>
  Object.entries(t.findResources('AWS::IAM::Policy')).flatMap(([id, p]) => {
    const statements = (p.Properties.PolicyDocument.Statement as Array<{ Action: string | string[]; Resource: unknown }>).filter((s) =>
      [s.Action].flat().some((a) => a.startsWith('cognito-idp:')),
    );
    if (statements.length === 0) return [];
    const resources = [...new Set(statements.map((s) => JSON.stringify(s.Resource)))];
    expect(resources).toHaveLength(1);
    return [{ id: id.replace(/[0-9A-F]{8}$/, ''), actions: statements.flatMap((s) => [s.Action].flat()).sort(), resource: JSON.parse(resources[0]) as unknown }];
  });

/** config.json as staged for the web bucket. */
function webConfig(app: App, t: Template): Record<string, unknown> {
  const [deployment] = Object.values(t.findResources('Custom::CDKBucketDeployment'));
  const hash = JSON.stringify(deployment.Properties.SourceObjectKeys[1]).match(/([0-9a-f]{64})\.zip/)![1];
  return JSON.parse(readFileSync(path.join(app.outdir, `asset.${hash}`, 'config.json'), 'utf8'));
}

describe('an existing user pool with a web and a session client (context userPoolId, userPoolClientIds)', () => {
  const { app, stack, template } = synth({ userPoolId: POOL_ID, userPoolClientIds: `${WEB_CLIENT}, ${SESSION_CLIENT}`, stackName: 'ByoPool' });

  it('passes every cdk-nag AwsSolutions check', () => {
    const report = new AwsSolutionsChecks(app).validateScope(stack);
    expect(report.violations.map((v) => `${v.ruleName}: ${v.violatingResources.map((r) => r.resourceLogicalId).join(',')}`)).toEqual([]);
    expect(report.success).toBe(true);
  });

  it('creates no user pool, app client, group, domain or other Cognito resource', () => {
    for (const type of ['AWS::Cognito::UserPool', 'AWS::Cognito::UserPoolClient', 'AWS::Cognito::UserPoolGroup', 'AWS::Cognito::UserPoolDomain']) {
      template.resourceCountIs(type, 0);
    }
    const types = Object.values(template.toJSON().Resources as Record<string, { Type: string }>).map((r) => r.Type);
    expect(types.filter((type) => type.startsWith('AWS::Cognito::'))).toEqual([]);
  });

  it('gives the authorizer, every realtime function and the session API the given pool id and both client ids', () => {
    const functions = Object.entries(template.findResources('AWS::Lambda::Function')).filter(([id]) =>
      /^(RealtimeAuthorizer|RealtimeConnect|RealtimeDisconnect|RealtimeMessage|SessionsHandler)/.test(id),
    );
    expect(functions).toHaveLength(5);
    for (const [, fn] of functions) {
      expect(fn.Properties.Environment.Variables).toMatchObject({ USER_POOL_ID: POOL_ID, USER_POOL_CLIENT_ID: WEB_CLIENT, SESSION_CLIENT_ID: SESSION_CLIENT, MAX_TOKEN_LIFETIME_SECONDS: '900' });
    }
    template.hasResourceProperties('AWS::ECS::TaskDefinition', {
      ContainerDefinitions: [
        Match.objectLike({
          Environment: Match.arrayWith([
            { Name: 'USER_POOL_ID', Value: POOL_ID },
            { Name: 'USER_POOL_CLIENT_ID', Value: WEB_CLIENT },
            { Name: 'SESSION_CLIENT_ID', Value: SESSION_CLIENT },
          ]),
        }),
      ],
    });
  });

  it("scopes AdminGetUser and the session client's sign-in, secret read and sign-out to the imported pool's ARN", () => {
    const statements = cognitoStatements(template);
    expect(statements.map((s) => s.id).sort()).toEqual([
      'RealtimeAuthorizerRoleDefaultPolicy',
      'RealtimeMessageRoleDefaultPolicy',
      'SessionsHandlerRoleDefaultPolicy',
      'SpeechTaskRoleDefaultPolicy',
    ]);
    for (const s of statements) expect(s.resource).toEqual(poolArn);
    const sessions = ['cognito-idp:AdminInitiateAuth', 'cognito-idp:AdminUserGlobalSignOut', 'cognito-idp:DescribeUserPoolClient'];
    // The authorizer also reads display names (AdminGetUser, alongside its revocation read).
    expect(statements.find((s) => s.id === 'RealtimeAuthorizerRoleDefaultPolicy')!.actions).toEqual(['cognito-idp:AdminGetUser', ...sessions]);
    for (const s of statements.filter((s) => s.id !== 'RealtimeAuthorizerRoleDefaultPolicy')) expect(s.actions).toEqual(sessions);
  });

  it("refuses, by a template rule, a deployment to another region than the pool's", () => {
    const rules = template.toJSON().Rules as Record<string, { Assertions: Array<{ Assert: unknown; AssertDescription: string }> }>;
    const [rule] = Object.entries(rules).filter(([id]) => id.startsWith('IdentityUserPoolInStackRegion')).map(([, r]) => r);
    expect(rule.Assertions).toEqual([{ Assert: { 'Fn::Equals': [{ Ref: 'AWS::Region' }, 'eu-west-1'] }, AssertDescription: expect.stringContaining('deploy this stack to eu-west-1') }]);
  });

  it('outputs the given pool id and web client id, and tells the web app to use cookie sessions', () => {
    template.hasOutput('UserPoolId', { Value: POOL_ID });
    template.hasOutput('UserPoolClientId', { Value: WEB_CLIENT });
    expect(webConfig(app, template)).toMatchObject({ userPoolId: POOL_ID, userPoolClientId: WEB_CLIENT, authMode: 'session' });
  });

  it('hard-codes no account, and no region but the pool id and the rule that checks it', () => {
    const { Rules: _rules, ...rest } = template.toJSON();
    expect(JSON.stringify(template.toJSON())).not.toMatch(/\b\d{12}\b/);
    expect(JSON.stringify(rest).replaceAll(POOL_ID, '')).not.toMatch(/(us|eu|ap|sa|ca|me|af)-(east|west|north|south|central|northeast|southeast)-\d/);
  });
});

describe('an existing user pool with a web client only', () => {
  const { app, stack, template } = synth({ userPoolId: POOL_ID, userPoolClientIds: WEB_CLIENT, stackName: 'ByoPoolTokens' });

  it('turns cookie sessions off: no session client id anywhere, no Cognito permission but AdminGetUser, token sign-in in the web app', () => {
    expect(JSON.stringify(template.toJSON())).not.toContain('SESSION_CLIENT_ID');
    expect(cognitoStatements(template)).toEqual([{ id: 'RealtimeAuthorizerRoleDefaultPolicy', actions: ['cognito-idp:AdminGetUser'], resource: poolArn }]);
    expect(webConfig(app, template)).toEqual({ region: '<<marker:0xbaba:0>>', userPoolId: POOL_ID, userPoolClientId: WEB_CLIENT, authMode: 'token' });
    template.resourceCountIs('AWS::Cognito::UserPoolClient', 0);
    expect(new AwsSolutionsChecks(app).validateScope(stack).violations).toEqual([]);
  });
});

describe('existing user pool input that cannot work fails synth, naming the key', () => {
  it.each([
    [{ userPoolId: 'AbCdEf123', userPoolClientIds: WEB_CLIENT }, 'Context userPoolId must be a Cognito user pool id, <region>_<id>'],
    [{ userPoolId: 'eu-west-1-AbCdEf123', userPoolClientIds: WEB_CLIENT }, 'Context userPoolId must be a Cognito user pool id'],
    [{ userPoolId: 'eu-west-1_abc/def', userPoolClientIds: WEB_CLIENT }, 'Context userPoolId must be a Cognito user pool id'],
    [{ userPoolClientIds: WEB_CLIENT }, 'Context userPoolId must be a Cognito user pool id'],
    [{ userPoolId: POOL_ID }, 'Context userPoolClientIds must be "<web client id>[,<session client id>]"'],
    [{ userPoolId: POOL_ID, userPoolClientIds: '' }, 'Context userPoolClientIds must be'],
    [{ userPoolId: POOL_ID, userPoolClientIds: `${WEB_CLIENT},` }, 'Context userPoolClientIds must be'],
    [{ userPoolId: POOL_ID, userPoolClientIds: 'abc-123' }, 'Context userPoolClientIds must be'],
    [{ userPoolId: POOL_ID, userPoolClientIds: 'a,b,c' }, 'Context userPoolClientIds must be'],
    [{ userPoolId: POOL_ID, userPoolClientIds: `${WEB_CLIENT},${WEB_CLIENT}` }, 'Context userPoolClientIds names the same client twice'],
    [{ userPoolId: POOL_ID, userPoolClientIds: WEB_CLIENT, tenants: 'acme' }, 'Context tenants configures a user pool the stack creates'],
    [{ userPoolId: POOL_ID, userPoolClientIds: WEB_CLIENT, selfSignUp: 'true' }, 'Context selfSignUp configures a user pool the stack creates'],
    [{ userPoolId: POOL_ID, userPoolClientIds: WEB_CLIENT, webAuthMode: 'session' }, 'Context webAuthMode "session" needs a session client'],
  ])('context %j', (context, message) => {
    expect(() => synth(context)).toThrow(message);
  });

  it('refuses props that cannot work: malformed ids, one client twice, created-pool settings, session sign-in without a session client, another region', () => {
    const stack = (props: ConstructorParameters<typeof GatehouseStack>[2]) => () => new GatehouseStack(new App({ context: cdkJson.context }), 'Props', props);
    const existing = { userPoolId: POOL_ID, webClientId: WEB_CLIENT };
    expect(stack({ identity: { existingUserPool: { ...existing, userPoolId: 'pool' } } })).toThrow('identity.existingUserPool.userPoolId must be a Cognito user pool id');
    expect(stack({ identity: { existingUserPool: { ...existing, webClientId: '' } } })).toThrow('identity.existingUserPool.webClientId must be a Cognito app client id');
    expect(stack({ identity: { existingUserPool: { ...existing, sessionClientId: 'a b' } } })).toThrow('identity.existingUserPool.sessionClientId must be a Cognito app client id');
    expect(stack({ identity: { existingUserPool: { ...existing, sessionClientId: WEB_CLIENT } } })).toThrow('sessionClientId must differ from webClientId');
    expect(stack({ identity: { existingUserPool: existing, tenants: ['acme'], threatProtection: true } })).toThrow(
      'identity.threatProtection, identity.tenants configure a pool the stack creates',
    );
    expect(stack({ identity: { existingUserPool: existing }, webAuthMode: 'session' })).toThrow("webAuthMode 'session' needs a session client");
    expect(stack({ identity: { existingUserPool: existing }, env: { region: 'us-east-1' } })).toThrow(
      `identity.existingUserPool.userPoolId ${POOL_ID} is in eu-west-1, the stack in us-east-1`,
    );
  });
});

describe('accessTokenMinutes', () => {
  const lifetimes = (t: Template) =>
    new Set(Object.values(t.findResources('AWS::Lambda::Function')).flatMap((f) => f.Properties.Environment?.Variables?.MAX_TOKEN_LIFETIME_SECONDS ?? []));

  it("lets the authorizer accept an existing pool's longer-lived tokens (Cognito's default is 60 minutes)", () => {
    expect(lifetimes(synth({ userPoolId: POOL_ID, userPoolClientIds: WEB_CLIENT }).template)).toEqual(new Set(['900']));
    expect(lifetimes(synth({ userPoolId: POOL_ID, userPoolClientIds: WEB_CLIENT, accessTokenMinutes: '60' }).template)).toEqual(new Set(['3600']));
  });

  it('sets the created clients\' access-token validity and the authorizer\'s limit together', () => {
    const { template } = synth({ accessTokenMinutes: '30' });
    expect(lifetimes(template)).toEqual(new Set(['1800']));
    for (const client of Object.values(template.findResources('AWS::Cognito::UserPoolClient'))) {
      expect(client.Properties).toMatchObject({ AccessTokenValidity: 30, TokenValidityUnits: { AccessToken: 'minutes' } });
    }
  });

  it.each(['4', '1441', '15.5', 'fifteen', ''])('refuses %j, naming the key and the range', (value) => {
    expect(() => synth({ accessTokenMinutes: value })).toThrow(`Context accessTokenMinutes must be a whole number of minutes from 5 to 1440 (Cognito's range), not "${value}".`);
  });
});
