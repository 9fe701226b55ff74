import { App } from 'aws-cdk-lib';
import { Match, Template } from 'aws-cdk-lib/assertions';
import { AwsSolutionsChecks } from 'cdk-nag';
import { buildApp } from '../bin/app';
import { ACTIONS } from '../common/protocol';
import { GatehouseStack } from '../lib/gatehouse-stack';
import cdkJson from '../cdk.json';

// Asset hashes change with handler code; the snapshot guards the infrastructure, not the bundles.
expect.addSnapshotSerializer({
  test: (value) => typeof value === 'string' && /[0-9a-f]{64}/.test(value),
  print: (value) => JSON.stringify((value as string).replace(/[0-9a-f]{64}/g, '<asset-hash>')),
});

function synth(context: Record<string, unknown> = {}) {
  const app = new App({ context: { ...cdkJson.context, ...context } });
  const stack = buildApp(app);
  return { app, stack, template: Template.fromStack(stack) };
}

const { app, stack, template } = synth();
const resources = (type: string) => Object.entries(template.findResources(type));

describe('Gatehouse stack', () => {
  it('passes every cdk-nag AwsSolutions check (acknowledged findings carry reasons)', () => {
    const report = new AwsSolutionsChecks(app).validateScope(stack);
    expect(report.violations.map((v) => `${v.ruleName}: ${v.violatingResources.map((r) => r.resourceLogicalId).join(',')}`)).toEqual([]);
    expect(report.success).toBe(true);
  });

  it('creates a WEBSOCKET API routed on $request.body.action', () => {
    template.resourceCountIs('AWS::ApiGatewayV2::Api', 1);
    template.hasResourceProperties('AWS::ApiGatewayV2::Api', {
      ProtocolType: 'WEBSOCKET',
      RouteSelectionExpression: '$request.body.action',
    });
  });

  it('has the connect, disconnect, default and every action route', () => {
    const keys = resources('AWS::ApiGatewayV2::Route').map(([, r]) => r.Properties.RouteKey).sort();
    expect(keys).toEqual(['$connect', '$default', '$disconnect', ...ACTIONS].sort());
  });

  it('guards $connect, and only $connect, with a REQUEST authorizer that every token location reaches', () => {
    template.resourceCountIs('AWS::ApiGatewayV2::Authorizer', 1);
    // No identity sources: API Gateway would answer 401 without calling the authorizer if any were absent.
    template.hasResourceProperties('AWS::ApiGatewayV2::Authorizer', {
      AuthorizerType: 'REQUEST',
      IdentitySource: Match.absent(),
    });
    const routes = resources('AWS::ApiGatewayV2::Route').map(([, r]) => r.Properties);
    const guarded = routes.filter((r) => r.AuthorizationType === 'CUSTOM');
    expect(guarded.map((r) => r.RouteKey)).toEqual(['$connect']);
    expect(guarded[0].AuthorizerId).toEqual({ Ref: expect.stringMatching(/Authorizer/) });
    for (const route of routes.filter((r) => r.RouteKey !== '$connect')) {
      expect(route.AuthorizationType).toBe('NONE');
      expect(route.AuthorizerId).toBeUndefined();
    }
  });

  it('integrates routes with Lambda proxy integrations, and message routes return the reply', () => {
    const integrations = resources('AWS::ApiGatewayV2::Integration').map(([, r]) => r.Properties);
    expect(integrations).toHaveLength(3); // connect, disconnect, one message function for $default and actions
    for (const i of integrations) expect(i.IntegrationType).toBe('AWS_PROXY');
    const routes = resources('AWS::ApiGatewayV2::Route').map(([, r]) => r.Properties);
    for (const r of routes.filter((r) => !['$connect', '$disconnect'].includes(r.RouteKey))) {
      expect(r.RouteResponseSelectionExpression).toBe('$default');
    }
    template.resourceCountIs('AWS::ApiGatewayV2::RouteResponse', ACTIONS.length + 1);
  });

  it('throttles the stage and writes JSON access logs that hold no token and no query string', () => {
    template.hasResourceProperties('AWS::ApiGatewayV2::Stage', {
      AutoDeploy: true,
      DefaultRouteSettings: Match.objectLike({
        ThrottlingRateLimit: 500,
        ThrottlingBurstLimit: 1000,
        LoggingLevel: 'ERROR',
        DataTraceEnabled: false,
      }),
      AccessLogSettings: { DestinationArn: Match.anyValue(), Format: Match.anyValue() },
    });
    const [, stage] = resources('AWS::ApiGatewayV2::Stage')[0];
    const format = stage.Properties.AccessLogSettings.Format as string;
    const fields = JSON.parse(format) as Record<string, string>;
    expect(fields).toMatchObject({ requestId: '$context.requestId', connectionId: '$context.connectionId', status: '$context.status' });
    expect(format).not.toMatch(/querystring|header|token|authorization|cookie/i);
  });

  it('stores connections in an on-demand table with TTL, PITR and one index per audience', () => {
    template.hasResourceProperties('AWS::DynamoDB::Table', {
      BillingMode: 'PAY_PER_REQUEST',
      KeySchema: [
        { AttributeName: 'pk', KeyType: 'HASH' },
        { AttributeName: 'sk', KeyType: 'RANGE' },
      ],
      TimeToLiveSpecification: { AttributeName: 'expiresAt', Enabled: true },
      PointInTimeRecoverySpecification: { PointInTimeRecoveryEnabled: true },
      SSESpecification: { SSEEnabled: true },
      GlobalSecondaryIndexes: ['byUser', 'byTenant', 'byRoom'].map((name) =>
        Match.objectLike({
          IndexName: name,
          Projection: { ProjectionType: 'INCLUDE', NonKeyAttributes: ['expiresAt'] },
        }),
      ),
    });
  });

  it('creates a user pool with email sign-in, a strong password policy, no self sign-up and optional MFA', () => {
    template.hasResourceProperties('AWS::Cognito::UserPool', {
      UsernameAttributes: ['email'],
      AdminCreateUserConfig: { AllowAdminCreateUserOnly: true },
      MfaConfiguration: 'OPTIONAL',
      EnabledMfas: ['SOFTWARE_TOKEN_MFA'],
      DeletionProtection: 'ACTIVE',
      Policies: {
        PasswordPolicy: {
          MinimumLength: 12,
          RequireLowercase: true,
          RequireUppercase: true,
          RequireNumbers: true,
          RequireSymbols: true,
          TemporaryPasswordValidityDays: 3,
        },
      },
    });
    template.hasResource('AWS::Cognito::UserPool', { DeletionPolicy: 'Retain' });
    template.hasResourceProperties('AWS::Cognito::UserPoolGroup', { GroupName: 'admin' });
  });

  it('gives the web app a public client with SRP and password flows, short access tokens and revocation', () => {
    template.hasResourceProperties('AWS::Cognito::UserPoolClient', {
      GenerateSecret: false,
      ExplicitAuthFlows: Match.arrayEquals(['ALLOW_USER_PASSWORD_AUTH', 'ALLOW_USER_SRP_AUTH', 'ALLOW_REFRESH_TOKEN_AUTH']),
      AccessTokenValidity: 15,
      RefreshTokenValidity: 720,
      TokenValidityUnits: Match.objectLike({ AccessToken: 'minutes', RefreshToken: 'minutes' }),
      EnableTokenRevocation: true,
      PreventUserExistenceErrors: 'ENABLED',
    });
  });

  it('configures the authorizer to accept exactly what the pool issues', () => {
    template.hasResourceProperties('AWS::Lambda::Function', {
      Environment: {
        Variables: Match.objectLike({
          USER_POOL_ID: { Ref: Match.stringLikeRegexp('UserPool') },
          USER_POOL_CLIENT_ID: { Ref: Match.stringLikeRegexp('WebClient') },
          MAX_TOKEN_LIFETIME_SECONDS: '900',
          ALLOW_QUERY_TOKEN: 'true',
        }),
      },
    });
  });

  it('builds every function for arm64 on a current Node.js runtime, with source maps and its own log group', () => {
    const functions = resources('AWS::Lambda::Function').map(([, r]) => r.Properties);
    expect(functions).toHaveLength(5); // authorizer, connect, disconnect, message, publishing fan-out
    for (const fn of functions) {
      expect(fn.Runtime).toBe('nodejs24.x');
      expect(fn.Architectures).toEqual(['arm64']);
      expect(fn.Environment.Variables.NODE_OPTIONS).toBe('--enable-source-maps');
      expect(fn.LoggingConfig.LogGroup).toEqual({ Ref: expect.any(String) });
    }
    for (const [, group] of resources('AWS::Logs::LogGroup')) expect(group.Properties.RetentionInDays).toBe(30);
  });

  it('lets only the message and fan-out functions manage connections: POST and DELETE on this stage', () => {
    const policies = resources('AWS::IAM::Policy').map(([id, r]) => ({ id, statements: r.Properties.PolicyDocument.Statement as any[] }));
    const manage = policies.flatMap((p) =>
      p.statements.filter((s) => [s.Action].flat().includes('execute-api:ManageConnections')).map((s) => ({ id: p.id, s })),
    );
    expect(manage.map((m) => m.id).sort()).toEqual([expect.stringMatching(/^PublishingFanoutRole/), expect.stringMatching(/^RealtimeMessageRole/)]);
    for (const { s } of manage) {
      const resourcesText = JSON.stringify(s.Resource);
      expect(s.Resource).toHaveLength(2);
      expect(resourcesText).toContain('/live/POST/@connections/*');
      expect(resourcesText).toContain('/live/DELETE/@connections/*');
      expect(resourcesText).toContain('RealtimeApi');
    }
  });

  it('publishes through an event bus whose rule feeds the fan-out function, with retries and a dead-letter queue', () => {
    template.resourceCountIs('AWS::Events::EventBus', 1);
    const [fanoutId] = resources('AWS::Lambda::Function').find(([id]) => id.startsWith('PublishingFanout'))!;
    const [queueId] = resources('AWS::SQS::Queue')[0];
    template.hasResourceProperties('AWS::Events::Rule', {
      EventBusName: { Ref: Match.stringLikeRegexp('PublishingBus') },
      EventPattern: { 'detail-type': ['Gatehouse Publish'] },
      Targets: [
        Match.objectLike({
          Arn: { 'Fn::GetAtt': [fanoutId, 'Arn'] },
          DeadLetterConfig: { Arn: { 'Fn::GetAtt': [queueId, 'Arn'] } },
          RetryPolicy: { MaximumRetryAttempts: 8, MaximumEventAgeInSeconds: 3600 },
        }),
      ],
    });
    template.hasResourceProperties('AWS::SQS::Queue', { SqsManagedSseEnabled: true, MessageRetentionPeriod: 1209600 });
    template.hasResourceProperties('AWS::SQS::QueuePolicy', {
      PolicyDocument: {
        Statement: Match.arrayWith([
          Match.objectLike({ Effect: 'Deny', Condition: { Bool: { 'aws:SecureTransport': 'false' } } }),
        ]),
      },
    });
    // Nobody may publish until a deployer names who.
    template.resourceCountIs('AWS::Events::EventBusPolicy', 0);
    template.hasOutput('EventBusName', {});
  });

  it('grants no wildcard action and no Resource "*"', () => {
    for (const [, policy] of resources('AWS::IAM::Policy')) {
      for (const s of policy.Properties.PolicyDocument.Statement) {
        for (const action of [s.Action].flat()) expect(action).not.toMatch(/(^\*$|:\*$)/);
        expect([s.Resource].flat()).not.toContain('*');
      }
    }
  });

  it('hard-codes no account, region or resource name', () => {
    const text = JSON.stringify(template.toJSON());
    expect(text).not.toMatch(/\b\d{12}\b/);
    expect(text).not.toMatch(/(us|eu|ap|sa|ca|me|af)-(east|west|north|south|central|northeast|southeast)-\d/);
    for (const type of ['AWS::DynamoDB::Table', 'AWS::Cognito::UserPool', 'AWS::Lambda::Function', 'AWS::ApiGatewayV2::Api']) {
      for (const [, r] of resources(type)) {
        expect(r.Properties.TableName ?? r.Properties.UserPoolName ?? r.Properties.FunctionName).toBeUndefined();
      }
    }
  });

  it('outputs what a client needs', () => {
    for (const name of ['WebSocketUrl', 'UserPoolId', 'UserPoolClientId', 'Region']) template.hasOutput(name, {});
  });

  it('matches the snapshot (asset hashes masked)', () => {
    expect(template.toJSON()).toMatchSnapshot();
  });
});

describe('deployer settings', () => {
  it('turns off query-string tokens, creates tenant groups and enables threat protection when asked', () => {
    const custom = new GatehouseStack(new App({ context: cdkJson.context }), 'Custom', {
      identity: { tenants: ['acme', 'globex'], threatProtection: true },
      realtime: { allowTokenInQueryString: false, stageName: 'prod', throttle: { rateLimit: 50, burstLimit: 100 } },
    });
    const t = Template.fromStack(custom);
    t.hasResourceProperties('AWS::Cognito::UserPoolGroup', { GroupName: 'tenant:acme' });
    t.hasResourceProperties('AWS::Cognito::UserPoolGroup', { GroupName: 'tenant:globex' });
    t.hasResourceProperties('AWS::Cognito::UserPool', {
      UserPoolTier: 'PLUS',
      UserPoolAddOns: { AdvancedSecurityMode: 'ENFORCED' },
    });
    t.hasResourceProperties('AWS::Lambda::Function', {
      Environment: { Variables: Match.objectLike({ ALLOW_QUERY_TOKEN: 'false' }) },
    });
    t.hasResourceProperties('AWS::ApiGatewayV2::Stage', {
      StageName: 'prod',
      DefaultRouteSettings: Match.objectLike({ ThrottlingRateLimit: 50, ThrottlingBurstLimit: 100 }),
    });
  });

  it('lets named principals, and only them, put events on the publishing bus', () => {
    const t = Template.fromStack(
      new GatehouseStack(new App({ context: cdkJson.context }), 'Publishers', {
        publishing: { publisherArns: ['arn:aws:iam::111122223333:role/jobs', '444455556666'] },
      }),
    );
    t.resourceCountIs('AWS::Events::EventBusPolicy', 2);
    t.hasResourceProperties('AWS::Events::EventBusPolicy', {
      Statement: Match.objectLike({ Action: 'events:PutEvents', Principal: { AWS: 'arn:aws:iam::111122223333:role/jobs' } }),
    });
    t.hasResourceProperties('AWS::Events::EventBusPolicy', {
      Statement: Match.objectLike({
        Action: 'events:PutEvents',
        Principal: { AWS: { 'Fn::Join': ['', ['arn:', { Ref: 'AWS::Partition' }, ':iam::444455556666:root']] } },
      }),
    });
  });

  it('reads tenants and the query-token switch from context', () => {
    const { template: t } = synth({ tenants: 'acme, initech', allowQueryToken: 'false', stackName: 'FromContext' });
    t.hasResourceProperties('AWS::Cognito::UserPoolGroup', { GroupName: 'tenant:initech' });
    t.hasResourceProperties('AWS::Lambda::Function', {
      Environment: { Variables: Match.objectLike({ ALLOW_QUERY_TOKEN: 'false' }) },
    });
  });
});
