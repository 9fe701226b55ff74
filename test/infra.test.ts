import { existsSync, readdirSync, readFileSync } from 'node:fs';
import * as path from 'node:path';
import { App, Duration, Stack } from 'aws-cdk-lib';
import { Certificate } from 'aws-cdk-lib/aws-certificatemanager';
import { Match, Template } from 'aws-cdk-lib/assertions';
import { AwsSolutionsChecks } from 'cdk-nag';
import { buildApp } from '../bin/app';
import { ACTIONS, PONG_TEMPLATE } from '../protocol';
import { GatehouseStack, type RoomHookSettings } from '../lib/gatehouse-stack';
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
const [websocketApiId] = resources('AWS::ApiGatewayV2::Api').find(([, r]) => r.Properties.ProtocolType === 'WEBSOCKET')!;
const ofWebsocketApi = (type: string) => resources(type).filter(([, r]) => r.Properties.ApiId?.Ref === websocketApiId);

/** Every Lambda action an IAM policy grants, one resource at a time (CDK merges statements with the same action). */
function lambdaGrants(policies: Array<[string, Record<string, any>]>): Array<{ policy: string; action: string; resource: unknown }> {
  return policies.flatMap(([policy, r]) =>
    (r.Properties.PolicyDocument.Statement as any[])
      .filter((st) => [st.Action].flat().some((a: string) => a.startsWith('lambda:')))
      .flatMap((st) => [st.Action].flat().flatMap((action: string) => [st.Resource].flat().map((resource: unknown) => ({ policy, action, resource })))),
  );
}

describe('Gatehouse stack', () => {
  it('passes every cdk-nag AwsSolutions check (acknowledged findings carry reasons)', () => {
    const report = new AwsSolutionsChecks(app).validateScope(stack);
    expect(report.violations.map((v) => `${v.ruleName}: ${v.violatingResources.map((r) => r.resourceLogicalId).join(',')}`)).toEqual([]);
    expect(report.success).toBe(true);
  });

  it('creates a WEBSOCKET API routed on $request.body.action (and an HTTP API for sessions)', () => {
    template.resourceCountIs('AWS::ApiGatewayV2::Api', 2);
    template.hasResourceProperties('AWS::ApiGatewayV2::Api', { ProtocolType: 'HTTP' });
    template.hasResourceProperties('AWS::ApiGatewayV2::Api', {
      ProtocolType: 'WEBSOCKET',
      RouteSelectionExpression: '$request.body.action',
    });
  });

  it('has the connect, disconnect, default and every action route', () => {
    const keys = ofWebsocketApi('AWS::ApiGatewayV2::Route').map(([, r]) => r.Properties.RouteKey).sort();
    expect(keys).toEqual(['$connect', '$default', '$disconnect', ...ACTIONS].sort());
  });

  it('guards $connect, and only $connect, with a REQUEST authorizer that every token location reaches', () => {
    template.resourceCountIs('AWS::ApiGatewayV2::Authorizer', 1);
    // No identity sources: API Gateway would answer 401 without calling the authorizer if any were absent.
    template.hasResourceProperties('AWS::ApiGatewayV2::Authorizer', {
      AuthorizerType: 'REQUEST',
      IdentitySource: Match.absent(),
    });
    const routes = ofWebsocketApi('AWS::ApiGatewayV2::Route').map(([, r]) => r.Properties);
    const guarded = routes.filter((r) => r.AuthorizationType === 'CUSTOM');
    expect(guarded.map((r) => r.RouteKey)).toEqual(['$connect']);
    expect(guarded[0].AuthorizerId).toEqual({ Ref: expect.stringMatching(/Authorizer/) });
    for (const route of routes.filter((r) => r.RouteKey !== '$connect')) {
      expect(route.AuthorizationType).toBe('NONE');
      expect(route.AuthorizerId).toBeUndefined();
    }
  });

  it('integrates routes with Lambda proxy integrations, and message routes return the reply', () => {
    const integrations = ofWebsocketApi('AWS::ApiGatewayV2::Integration');
    // connect, disconnect, one message function for $default and actions; and ping's mock
    expect(integrations.map(([, r]) => r.Properties.IntegrationType).sort()).toEqual(['AWS_PROXY', 'AWS_PROXY', 'AWS_PROXY', 'MOCK']);
    const routes = ofWebsocketApi('AWS::ApiGatewayV2::Route').map(([, r]) => r.Properties);
    for (const r of routes.filter((r) => !['$connect', '$disconnect'].includes(r.RouteKey))) {
      expect(r.RouteResponseSelectionExpression).toBe('$default');
    }
    template.resourceCountIs('AWS::ApiGatewayV2::RouteResponse', ACTIONS.length + 1);
  });

  it('answers ping from API Gateway itself (a mock integration and its pong): a heartbeat runs no function and writes nothing', () => {
    const [mockId, mock] = ofWebsocketApi('AWS::ApiGatewayV2::Integration').find(([, r]) => r.Properties.IntegrationType === 'MOCK')!;
    expect(mock.Properties).toMatchObject({ RequestTemplates: { $default: '{"statusCode": 200}' }, TemplateSelectionExpression: '\\$default' });
    const ping = ofWebsocketApi('AWS::ApiGatewayV2::Route').find(([, r]) => r.Properties.RouteKey === 'ping')![1].Properties;
    expect(JSON.stringify(ping.Target)).toContain(mockId);
    const [, response] = resources('AWS::ApiGatewayV2::IntegrationResponse').find(([, r]) => r.Properties.IntegrationId.Ref === mockId)!;
    expect(response.Properties).toMatchObject({ IntegrationResponseKey: '$default', ResponseTemplates: { $default: PONG_TEMPLATE } });
    // Every other action reaches the message function.
    const others = ofWebsocketApi('AWS::ApiGatewayV2::Route').filter(([, r]) => r.Properties.RouteKey !== 'ping' && !r.Properties.RouteKey.startsWith('$'));
    expect(new Set(others.map(([, r]) => JSON.stringify(r.Properties.Target))).size).toBe(1);
    expect(others).toHaveLength(ACTIONS.length - 1);
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

  it('stores connections in an on-demand table with TTL, PITR and one index, by expiry, that no guarantee reads', () => {
    template.hasResourceProperties('AWS::DynamoDB::Table', {
      BillingMode: 'PAY_PER_REQUEST',
      KeySchema: [
        { AttributeName: 'pk', KeyType: 'HASH' },
        { AttributeName: 'sk', KeyType: 'RANGE' },
      ],
      TimeToLiveSpecification: { AttributeName: 'expiresAt', Enabled: true },
      PointInTimeRecoverySpecification: { PointInTimeRecoveryEnabled: true },
      SSESpecification: { SSEEnabled: true },
      GlobalSecondaryIndexes: [
        Match.objectLike({ IndexName: 'byExpiry', Projection: { ProjectionType: 'INCLUDE', NonKeyAttributes: ['expiresAt', 'tokenExpiresAt'] } }),
      ],
    });
  });

  it('keeps legacy indexes only when asked, one fewer per upgrade step (CloudFormation deletes one index per update)', () => {
    const legacy = synth({ legacyIndexes: 'byUser,byRoom' }).template;
    const [table] = Object.values(legacy.findResources('AWS::DynamoDB::Table'));
    expect(table.Properties.GlobalSecondaryIndexes.map((g: { IndexName: string }) => g.IndexName)).toEqual(['byExpiry', 'byUser', 'byRoom']);
    expect(() => synth({ legacyIndexes: 'byNothing' })).toThrow(/legacyIndexes/);
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

  it('turns OAuth off on both app clients: no implicit or code flow, no example.com callback, without a domain', () => {
    const clients = resources('AWS::Cognito::UserPoolClient').map(([, r]) => r.Properties);
    expect(clients).toHaveLength(2);
    for (const c of clients) {
      expect(c.AllowedOAuthFlowsUserPoolClient).toBe(false);
      expect(c.AllowedOAuthFlows).toBeUndefined();
      expect(c.CallbackURLs).toBeUndefined();
    }
    template.resourceCountIs('AWS::Cognito::UserPoolDomain', 0);
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
    // authorizer, connect, disconnect, message, publishing fan-out, session API, sweeper; plus CDK's own helpers
    const ours = resources('AWS::Lambda::Function').filter(([id]) => /^(Realtime|Publishing|Sessions|Sweeper)/.test(id)).map(([, r]) => r.Properties);
    expect(ours).toHaveLength(7);
    for (const fn of ours) {
      expect(fn.Runtime).toBe('nodejs24.x');
      expect(fn.Architectures).toEqual(['arm64']);
      expect(fn.Environment.Variables.NODE_OPTIONS).toBe('--enable-source-maps');
      expect(fn.LoggingConfig.LogGroup).toEqual({ Ref: expect.any(String) });
    }
    for (const [, group] of resources('AWS::Logs::LogGroup')) expect(group.Properties.RetentionInDays).toBe(30);
    expect(functions.length).toBeGreaterThan(7);
  });

  it('lets only the functions that post or close manage connections: POST and DELETE on this stage', () => {
    const policies = resources('AWS::IAM::Policy').map(([id, r]) => ({ id, statements: r.Properties.PolicyDocument.Statement as any[] }));
    const manage = policies.flatMap((p) =>
      p.statements.filter((s) => [s.Action].flat().includes('execute-api:ManageConnections')).map((s) => ({ id: p.id, s })),
    );
    expect(manage.map((m) => m.id).sort()).toEqual([
      expect.stringMatching(/^PublishingFanoutRole/), // publishing
      expect.stringMatching(/^RealtimeDisconnectRole/), // presence "left" to the rooms a socket leaves
      expect.stringMatching(/^RealtimeMessageRole/), // messages, sign-out
      expect.stringMatching(/^RoomFanoutWorkerRole/), // big rooms' deliveries
      expect.stringMatching(/^SessionsHandlerRole/), // sign-out from the session API
      expect.stringMatching(/^SweeperHandlerRole/), // closing expired connections
    ]);
    for (const { s } of manage) {
      const resourcesText = JSON.stringify(s.Resource);
      expect(s.Resource).toHaveLength(2);
      expect(resourcesText).toContain('/live/POST/@connections/*');
      expect(resourcesText).toContain('/live/DELETE/@connections/*');
      expect(resourcesText).toContain('RealtimeApi');
    }
  });

  it('lets the message function, and no other, invoke the room hook (the sample, from cdk.json) and tells it the settings', () => {
    const functions = resources('AWS::Lambda::Function');
    const [hookId, hook] = functions.find(([id]) => id.startsWith('RoomHook'))!;
    expect(hook.Properties).toMatchObject({ Runtime: 'nodejs24.x', Architectures: ['arm64'], Timeout: 5, LoggingConfig: { LogGroup: { Ref: expect.stringMatching(/^RoomHookLogs/) } } });
    // The hook's own role may write its log group and nothing else.
    const hookRole = hook.Properties.Role['Fn::GetAtt'][0];
    const hookPolicies = resources('AWS::IAM::Policy').filter(([, r]) => r.Properties.Roles.some((role: { Ref: string }) => role.Ref === hookRole));
    expect(hookPolicies.flatMap(([, r]) => r.Properties.PolicyDocument.Statement.map((st: { Action: unknown }) => st.Action))).toEqual([['logs:CreateLogStream', 'logs:PutLogEvents']]);

    const invokers = lambdaGrants(resources('AWS::IAM::Policy')).filter((g) => JSON.stringify(g.resource).includes(hookId));
    // Exactly the function: no version or alias wildcard.
    expect(invokers).toEqual([{ policy: expect.stringMatching(/^RealtimeMessageRole/), action: 'lambda:InvokeFunction', resource: { 'Fn::GetAtt': [hookId, 'Arn'] } }]);

    const env = (prefix: string) => functions.find(([id]) => id.startsWith(prefix))![1].Properties.Environment.Variables;
    expect(env('RealtimeMessage')).toMatchObject({
      ROOM_HOOK_FUNCTION: { 'Fn::GetAtt': [hookId, 'Arn'] },
      ROOM_HOOK_NAMESPACES: 'run',
      ROOM_HOOK_TIMEOUT_MS: '2000',
      ROOM_HOOK_CACHE_TTL_MS: '30000',
    });
    for (const other of ['RealtimeConnect', 'RealtimeDisconnect', 'RealtimeAuthorizer', 'PublishingFanout', 'RoomFanoutWorker', 'SweeperHandler', 'SessionsHandler', 'RoomHook']) {
      expect(Object.keys(env(other)).filter((k) => k.startsWith('ROOM_HOOK'))).toEqual([]);
    }
  });

  it('publishes through an event bus whose rule feeds the fan-out function; what fails for good lands in an alarmed queue', () => {
    template.resourceCountIs('AWS::Events::EventBus', 1);
    const [fanoutId] = resources('AWS::Lambda::Function').find(([id]) => id.startsWith('PublishingFanout'))!;
    const [queueId] = resources('AWS::SQS::Queue').find(([id]) => id.startsWith('FailedInvocations'))!;
    template.resourceCountIs('AWS::SQS::Queue', 1);
    // The rule's retries and dead letters cover failures to invoke...
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
    // ...and the function's on-failure destination covers invocations that throw, after Lambda's two retries.
    template.hasResourceProperties('AWS::Lambda::EventInvokeConfig', {
      FunctionName: { Ref: fanoutId },
      MaximumRetryAttempts: 2,
      MaximumEventAgeInSeconds: 3600,
      DestinationConfig: { OnFailure: { Destination: { 'Fn::GetAtt': [queueId, 'Arn'] } } },
    });
    template.hasResourceProperties('AWS::CloudWatch::Alarm', {
      Namespace: 'AWS/SQS',
      MetricName: 'ApproximateNumberOfMessagesVisible',
      Dimensions: [{ Name: 'QueueName', Value: { 'Fn::GetAtt': [queueId, 'QueueName'] } }],
      Threshold: 1,
      ComparisonOperator: 'GreaterThanOrEqualToThreshold',
      TreatMissingData: 'notBreaching',
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
    template.hasOutput('FailedInvocationsQueueUrl', {});
  });

  it('hands big rooms to fan-out workers: reserved concurrency, retries into the failed-invocations queue, invoked only by the functions that deliver and by themselves', () => {
    const functions = resources('AWS::Lambda::Function');
    const [workerId, worker] = functions.find(([id]) => id.startsWith('RoomFanoutWorker'))!;
    expect(worker.Properties).toMatchObject({ Timeout: 60, ReservedConcurrentExecutions: 50, MemorySize: 512, RecursiveLoop: 'Allow' });
    expect(functions.filter(([, r]) => r.Properties.RecursiveLoop !== undefined).map(([id]) => id)).toEqual([workerId]);
    // The background functions are capped, so a storm of them cannot take the account's concurrency from the rest.
    const reserved = Object.fromEntries(functions.map(([id, r]) => [id.replace(/[0-9A-F]{8}$/, ''), r.Properties.ReservedConcurrentExecutions]));
    expect(reserved).toMatchObject({ RoomFanoutWorker: 50, PublishingFanout: 20, RealtimeAuthorizer: undefined, RealtimeMessage: undefined, RealtimeConnect: undefined });
    const [queueId] = resources('AWS::SQS::Queue').find(([id]) => id.startsWith('FailedInvocations'))!;
    const [, config] = resources('AWS::Lambda::EventInvokeConfig').find(([, r]) => r.Properties.FunctionName.Ref === workerId)!;
    expect(config.Properties).toMatchObject({ MaximumRetryAttempts: 2, MaximumEventAgeInSeconds: 6 * 3600, DestinationConfig: { OnFailure: { Destination: { 'Fn::GetAtt': [queueId, 'Arn'] } } } });
    const invokers = lambdaGrants(resources('AWS::IAM::Policy')).filter((g) => JSON.stringify(g.resource) === JSON.stringify({ 'Fn::GetAtt': [workerId, 'Arn'] }));
    expect(invokers.map((g) => [g.policy.replace(/[0-9A-F]{8}$/, ''), g.action]).sort()).toEqual([
      ['PublishingFanoutRoleDefaultPolicy', 'lambda:InvokeFunction'],
      ['RealtimeMessageRoleDefaultPolicy', 'lambda:InvokeFunction'],
      ['RoomFanoutInvokeItself', 'lambda:InvokeFunction'], // other shards and continuations, in a policy the function does not depend on
    ]);
    const env = (prefix: string) => functions.find(([id]) => id.startsWith(prefix))![1].Properties.Environment.Variables;
    for (const fn of ['RealtimeMessage', 'PublishingFanout']) expect(env(fn).FANOUT_FUNCTION).toEqual({ 'Fn::GetAtt': [workerId, 'Arn'] });
    for (const fn of ['RoomFanoutWorker', 'RealtimeConnect', 'SweeperHandler']) expect(env(fn).FANOUT_FUNCTION).toBeUndefined();
    // A worker keeps 25 s in hand for one post's every retry: a shorter time-out could never make progress.
    expect(() => new GatehouseStack(new App({ context: cdkJson.context }), 'ShortFanout', { fanout: { timeout: Duration.seconds(30) } })).toThrow('fanout.timeout must be at least 41 seconds');
  });

  it('gives every function that EventBridge invokes (asynchronously) an on-failure destination', () => {
    const targets = resources('AWS::Events::Rule').flatMap(([, r]) => (r.Properties.Targets as Array<{ Arn: { 'Fn::GetAtt': [string, string] } }>).map((t) => t.Arn['Fn::GetAtt'][0]));
    expect(targets.length).toBeGreaterThanOrEqual(2); // the fan-out and the sweeper
    const configured = new Map(resources('AWS::Lambda::EventInvokeConfig').map(([, r]) => [r.Properties.FunctionName.Ref, r.Properties]));
    for (const fn of targets) expect(configured.get(fn)?.DestinationConfig?.OnFailure?.Destination).toBeDefined();
  });

  it('names account-wide resources with the region, so one stack name deploys to several regions', () => {
    const named = [
      ...resources('AWS::CloudFront::ResponseHeadersPolicy').map(([, r]) => r.Properties.ResponseHeadersPolicyConfig.Name),
      ...resources('AWS::CloudFront::OriginAccessControl').map(([, r]) => r.Properties.OriginAccessControlConfig.Name),
      ...resources('AWS::CloudFront::VpcOrigin').map(([, r]) => r.Properties.VpcOriginEndpointConfig.Name),
      ...resources('AWS::CloudFront::Function').map(([, r]) => r.Properties.Name),
    ];
    expect(named.length).toBeGreaterThanOrEqual(6);
    for (const name of named) expect(JSON.stringify(name)).toContain('"Ref":"AWS::Region"');
  });

  it('empties the web bucket on destroy, and keeps the account-wide API Gateway logging role and setting', () => {
    const [webId, web] = resources('AWS::S3::Bucket').find(([id]) => id.startsWith('EdgeWeb'))!;
    expect(web.DeletionPolicy).toBe('Delete');
    // Every bucket the stack deletes is emptied first (CloudFormation cannot delete a bucket with objects in it).
    const emptied = resources('Custom::S3AutoDeleteObjects').map(([, r]) => r.Properties.BucketName.Ref);
    const deleted = resources('AWS::S3::Bucket').filter(([, r]) => r.DeletionPolicy === 'Delete').map(([id]) => id);
    expect(deleted).toContain(webId);
    expect(emptied.sort()).toEqual(deleted.sort());
    const [, account] = resources('AWS::ApiGateway::Account')[0];
    expect(account.DeletionPolicy).toBe('Retain');
    const roleId = account.Properties.CloudWatchRoleArn['Fn::GetAtt'][0];
    expect(template.toJSON().Resources[roleId].DeletionPolicy).toBe('Retain');
    // A second stack in the same account and region leaves the setting to the first.
    expect(Object.keys(synth({ configureAccountLogging: 'false' }).template.findResources('AWS::ApiGateway::Account'))).toHaveLength(0);
    expect(() => synth({ configureAccountLogging: 'no' })).toThrow(/configureAccountLogging/);
  });

  it('serves the single-page fallback from a viewer function on the default behaviour only, with no custom error responses', () => {
    const [, distribution] = resources('AWS::CloudFront::Distribution')[0];
    const config = distribution.Properties.DistributionConfig;
    expect(config.CustomErrorResponses).toBeUndefined();
    const [fnId] = resources('AWS::CloudFront::Function').find(([id]) => id.startsWith('EdgeAppRoutes'))!;
    expect(config.DefaultCacheBehavior.FunctionAssociations).toEqual([{ EventType: 'viewer-request', FunctionARN: { 'Fn::GetAtt': [fnId, 'FunctionARN'] } }]);
    for (const b of config.CacheBehaviors) expect(JSON.stringify(b.FunctionAssociations ?? [])).not.toContain(fnId);
  });

  it('grants no wildcard action, and Resource "*" only to the three actions AWS cannot scope', () => {
    const unscopable: string[] = [];
    for (const [, policy] of resources('AWS::IAM::Policy')) {
      for (const s of policy.Properties.PolicyDocument.Statement) {
        for (const action of [s.Action].flat()) expect(action).not.toMatch(/(^\*$|:\*$)/);
        if ([s.Resource].flat().includes('*')) unscopable.push(...[s.Action].flat());
      }
    }
    // ECR login (task execution role), the deploy-time prefix-list lookup, and CloudFront invalidations.
    expect(unscopable.sort()).toEqual(['cloudfront:CreateInvalidation', 'cloudfront:GetInvalidation', 'ec2:DescribeManagedPrefixLists', 'ecr:GetAuthorizationToken']);
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

describe('speech service and edge', () => {
  it('runs the speech service on Fargate arm64 in private subnets, with Container Insights and a safe deployment', () => {
    template.hasResourceProperties('AWS::ECS::Cluster', { ClusterSettings: [{ Name: 'containerInsights', Value: 'enabled' }] });
    template.hasResourceProperties('AWS::ECS::TaskDefinition', {
      RequiresCompatibilities: ['FARGATE'],
      RuntimePlatform: { CpuArchitecture: 'ARM64', OperatingSystemFamily: 'LINUX' },
      ContainerDefinitions: [
        Match.objectLike({
          Image: Match.objectLike({ 'Fn::Sub': Match.stringLikeRegexp('container-assets') }),
          PortMappings: [{ ContainerPort: 8080, Protocol: 'tcp' }],
          ReadonlyRootFilesystem: true,
          StopTimeout: 30,
          HealthCheck: Match.objectLike({ Command: Match.arrayWith([Match.stringLikeRegexp('/health')]) }),
          LogConfiguration: Match.objectLike({ LogDriver: 'awslogs' }),
          Environment: Match.arrayWith([
            { Name: 'USER_POOL_ID', Value: { Ref: Match.stringLikeRegexp('UserPool') } },
            { Name: 'SPEECH_PROVIDER', Value: 'bedrock' },
            { Name: 'MODEL_ID', Value: 'amazon.nova-2-sonic-v1:0' },
          ]),
        }),
      ],
    });
    template.hasResourceProperties('AWS::ECS::Service', {
      LaunchType: 'FARGATE',
      DesiredCount: 2,
      DeploymentConfiguration: { DeploymentCircuitBreaker: { Enable: true, Rollback: true }, MaximumPercent: 200, MinimumHealthyPercent: 100 },
      NetworkConfiguration: { AwsvpcConfiguration: Match.objectLike({ AssignPublicIp: 'DISABLED', Subnets: Match.arrayWith([{ Ref: Match.stringLikeRegexp('private') }]) }) },
    });
    template.hasResourceProperties('AWS::ApplicationAutoScaling::ScalingPolicy', {
      PolicyType: 'TargetTrackingScaling',
      TargetTrackingScalingPolicyConfiguration: Match.objectLike({
        TargetValue: 30,
        CustomizedMetricSpecification: Match.objectLike({ Namespace: 'Gatehouse/Speech', MetricName: 'ActiveSessions', Statistic: 'Average' }),
      }),
    });
    // The metric's dimension is this stack's own (the tasks emit it from SERVICE_NAME): stacks side by side in one
    // account and region never scale on each other's sessions.
    const [, scaling] = resources('AWS::ApplicationAutoScaling::ScalingPolicy')[0];
    const dimension = { Name: 'Service', Value: `${stack.stackName}-speech` };
    expect(scaling.Properties.TargetTrackingScalingPolicyConfiguration.CustomizedMetricSpecification.Dimensions).toEqual([dimension]);
    template.hasResourceProperties('AWS::ECS::TaskDefinition', {
      ContainerDefinitions: [Match.objectLike({ Environment: Match.arrayWith([{ Name: 'SERVICE_NAME', Value: dimension.Value }]) })],
    });
    template.hasResourceProperties('AWS::EC2::FlowLog', { ResourceType: 'VPC', TrafficType: 'REJECT' });
  });

  it('lets the task invoke exactly the configured model, with the IAM action the stream requires, and nothing else', () => {
    const [, policy] = resources('AWS::IAM::Policy').find(([id]) => id.startsWith('SpeechTaskRole'))!;
    const statements = policy.Properties.PolicyDocument.Statement as Array<{ Action: string | string[] }>;
    expect(statements.filter((s) => JSON.stringify(s.Action).includes('bedrock'))).toEqual([
      {
        // InvokeModelWithBidirectionalStream is authorized by bedrock:InvokeModel; IAM has no action of that name.
        Action: 'bedrock:InvokeModel',
        Effect: 'Allow',
        Resource: { 'Fn::Join': ['', ['arn:', { Ref: 'AWS::Partition' }, ':bedrock:', { Ref: 'AWS::Region' }, '::foundation-model/amazon.nova-2-sonic-v1:0']] },
      },
    ]);
    // Besides the model: the credential checks (table, and the pool's server-side client), as the authorizer.
    expect(statements.flatMap((s) => [s.Action].flat()).filter((a) => !a.startsWith('bedrock:') && !a.startsWith('dynamodb:')).sort()).toEqual([
      'cognito-idp:AdminInitiateAuth',
      'cognito-idp:AdminUserGlobalSignOut',
      'cognito-idp:DescribeUserPoolClient',
    ]);
    expect(JSON.stringify(template.toJSON())).not.toContain('bedrock:*');
  });

  it('puts the service behind an internal NLB with a security group that admits only CloudFront, a TCP listener and HTTP health checks', () => {
    template.hasResourceProperties('AWS::ElasticLoadBalancingV2::LoadBalancer', {
      Type: 'network',
      Scheme: 'internal',
      SecurityGroups: [{ 'Fn::GetAtt': [Match.stringLikeRegexp('LoadBalancerSecurityGroup'), 'GroupId'] }],
    });
    template.hasResourceProperties('AWS::ElasticLoadBalancingV2::Listener', { Port: 80, Protocol: 'TCP' });
    template.resourcePropertiesCountIs('AWS::ElasticLoadBalancingV2::Listener', { Protocol: 'TLS' }, 0);
    template.hasResourceProperties('AWS::ElasticLoadBalancingV2::TargetGroup', {
      Port: 8080,
      Protocol: 'TCP',
      HealthCheckProtocol: 'HTTP',
      HealthCheckPath: '/health',
      TargetGroupAttributes: Match.arrayWith([
        { Key: 'deregistration_delay.timeout_seconds', Value: '120' },
        { Key: 'deregistration_delay.connection_termination.enabled', Value: 'true' },
      ]),
    });
    // The only way in: the CloudFront origin-facing prefix list, looked up at deploy time (never a literal pl-...).
    template.hasResourceProperties('AWS::EC2::SecurityGroupIngress', {
      GroupId: { 'Fn::GetAtt': [Match.stringLikeRegexp('LoadBalancerSecurityGroup'), 'GroupId'] },
      SourcePrefixListId: { 'Fn::GetAtt': [Match.stringLikeRegexp('CloudFrontPrefixList'), 'ManagedPrefixLists.0.PrefixListId'] },
      FromPort: 80,
      ToPort: 80,
    });
    template.hasResourceProperties('Custom::AWS', {
      Create: Match.serializedJson(Match.objectLike({ action: 'describeManagedPrefixLists', parameters: { Filters: [{ Name: 'prefix-list-name', Values: ['com.amazonaws.global.cloudfront.origin-facing'] }] } })),
    });
    expect(JSON.stringify(template.toJSON())).not.toMatch(/pl-[0-9a-f]{8}/);
    template.hasResourceProperties('AWS::EC2::SecurityGroupIngress', {
      GroupId: { 'Fn::GetAtt': [Match.stringLikeRegexp('TaskSecurityGroup'), 'GroupId'] },
      SourceSecurityGroupId: { 'Fn::GetAtt': [Match.stringLikeRegexp('LoadBalancerSecurityGroup'), 'GroupId'] },
      FromPort: 8080,
    });
  });

  it('serves everything from one distribution: web app by OAC, /ws/realtime to API Gateway, /ws/speech through a VPC origin', () => {
    const [, dist] = resources('AWS::CloudFront::Distribution')[0];
    const config = dist.Properties.DistributionConfig;
    const origin = (id: string) => config.Origins.find((o: { Id: string }) => o.Id === id);
    const behaviour = (pattern: string) => config.CacheBehaviors.find((b: { PathPattern: string }) => b.PathPattern === pattern);
    const realtime = behaviour('/ws/realtime');
    const speech = behaviour('/ws/speech');
    const CACHING_DISABLED = '4135ea2d-6df8-44a3-9df3-4b5a84be39ad';
    expect(realtime).toMatchObject({
      CachePolicyId: CACHING_DISABLED,
      OriginRequestPolicyId: 'b689b0a8-53d0-40ab-baf2-68738e2966ac', // AllViewerExceptHostHeader: API Gateway rejects a foreign Host
      ViewerProtocolPolicy: 'https-only',
      AllowedMethods: ['GET', 'HEAD', 'OPTIONS', 'PUT', 'PATCH', 'POST', 'DELETE'],
      FunctionAssociations: [{ EventType: 'viewer-request', FunctionARN: expect.anything() }],
    });
    expect(speech).toMatchObject({
      CachePolicyId: CACHING_DISABLED,
      OriginRequestPolicyId: '216adef6-5c7f-47e4-b989-5492eafa07d3', // AllViewer
      ViewerProtocolPolicy: 'https-only',
      AllowedMethods: ['GET', 'HEAD', 'OPTIONS', 'PUT', 'PATCH', 'POST', 'DELETE'],
    });
    expect(origin(realtime.TargetOriginId)).toMatchObject({
      CustomOriginConfig: { OriginProtocolPolicy: 'https-only', OriginSSLProtocols: ['TLSv1.2'] },
      DomainName: { 'Fn::Join': ['', [{ Ref: expect.stringMatching(/RealtimeApi/) }, '.execute-api.', { Ref: 'AWS::Region' }, '.', { Ref: 'AWS::URLSuffix' }]] },
    });
    expect(origin(speech.TargetOriginId)).toMatchObject({ VpcOriginConfig: { VpcOriginId: { 'Fn::GetAtt': [expect.stringMatching(/VpcOrigin/), 'Id'] } } });
    template.hasResourceProperties('AWS::CloudFront::VpcOrigin', {
      VpcOriginEndpointConfig: { Arn: { Ref: Match.stringLikeRegexp('SpeechLoadBalancer') }, HTTPPort: 80, OriginProtocolPolicy: 'http-only', Name: Match.anyValue(), OriginSSLProtocols: Match.anyValue() },
    });
    expect(origin(config.DefaultCacheBehavior.TargetOriginId)).toMatchObject({ OriginAccessControlId: expect.anything(), S3OriginConfig: { OriginAccessIdentity: '' } });
    expect(config.DefaultCacheBehavior).toMatchObject({ ViewerProtocolPolicy: 'redirect-to-https', ResponseHeadersPolicyId: expect.anything() });
    expect(config.Logging).toMatchObject({ IncludeCookies: false, Prefix: 'cloudfront/' });
    template.hasResourceProperties('AWS::CloudFront::ResponseHeadersPolicy', {
      ResponseHeadersPolicyConfig: {
        SecurityHeadersConfig: Match.objectLike({
          StrictTransportSecurity: Match.objectLike({ AccessControlMaxAgeSec: 31536000 }),
          ContentTypeOptions: { Override: true },
          FrameOptions: { FrameOption: 'DENY', Override: true },
          ContentSecurityPolicy: Match.objectLike({ Override: true }),
        }),
        Comment: Match.anyValue(),
        Name: Match.anyValue(),
      },
    });
    // The CSP: scripts only from the app's origin; connections only to it (its /ws/* and /api) and to Cognito in the
    // stack's own region (token mode), never to any wss: host.
    const [, policy] = resources('AWS::CloudFront::ResponseHeadersPolicy')[0];
    const parts: unknown[] = policy.Properties.ResponseHeadersPolicyConfig.SecurityHeadersConfig.ContentSecurityPolicy.ContentSecurityPolicy['Fn::Join'][1];
    const csp = parts.map((p) => (typeof p === 'string' ? p : `\${${(p as { Ref: string }).Ref}}`)).join('');
    expect(csp).toMatch(/^default-src 'self'; script-src 'self';/);
    expect(csp).toContain("; connect-src 'self' https://cognito-idp.${AWS::Region}.amazonaws.com;");
    expect(csp).toContain("frame-ancestors 'none'");
    expect(csp).not.toMatch(/wss:|\*/);
    template.hasResourceProperties('AWS::S3::Bucket', {
      PublicAccessBlockConfiguration: { BlockPublicAcls: true, BlockPublicPolicy: true, IgnorePublicAcls: true, RestrictPublicBuckets: true },
      LoggingConfiguration: Match.objectLike({ LogFilePrefix: 's3-web/' }),
    });
  });

  it('rewrites /ws/realtime to the stage and refuses tokens in URLs at the edge (CloudFront logs query strings)', () => {
    const fns = resources('AWS::CloudFront::Function').map(([, r]) => r.Properties).filter((f) => /Path$/.test(f.FunctionConfig.Comment));
    expect(fns).toHaveLength(2);
    for (const fn of fns) {
      expect(fn.FunctionConfig.Runtime).toBe('cloudfront-js-2.0');
      // Run the deployed code: it is plain JavaScript.
      const handler = new Function(`${fn.FunctionCode}; return handler;`)();
      const refused = handler({ request: { uri: '/ws/x', querystring: { token: { value: 'eyJ' } }, headers: {} } });
      expect(refused).toMatchObject({ statusCode: 400 });
      const passed = handler({ request: { uri: '/ws/x', querystring: { tenant: { value: 'acme' } }, headers: {} } });
      expect(passed.querystring).toEqual({ tenant: { value: 'acme' } });
    }
    const rewrite = new Function(`${fns.find((f) => /RealtimePath/.test(f.FunctionConfig.Comment)).FunctionCode}; return handler;`)();
    expect(rewrite({ request: { uri: '/ws/realtime', querystring: {}, headers: {} } }).uri).toBe('/live');
  });

  it("sends the web app's own routes to index.html and leaves files alone", () => {
    const [, fn] = resources('AWS::CloudFront::Function').find(([id]) => id.startsWith('EdgeAppRoutes'))!;
    const handler = new Function(`${fn.Properties.FunctionCode}; return handler;`)();
    const uri = (u: string) => handler({ request: { uri: u, querystring: {}, headers: {} } }).uri;
    expect(uri('/rooms/general')).toBe('/index.html');
    expect(uri('/speech')).toBe('/index.html');
    expect(uri('/')).toBe('/'); // the default root object
    expect(uri('/assets/index-abc.js')).toBe('/assets/index-abc.js');
    expect(uri('/config.json')).toBe('/config.json');
  });

  it('publishes the production web build and config.json (pool, client, sign-in mode; no socket URLs) beside it', () => {
    const [, deployment] = resources('Custom::CDKBucketDeployment')[0];
    const markers = Object.values(deployment.Properties.SourceMarkers[1]).map((v) => JSON.stringify(v));
    expect(markers).toEqual([
      expect.stringMatching(/"Ref":"AWS::Region"/),
      expect.stringMatching(/"Ref":"IdentityUserPool[0-9A-F]{8}"/),
      expect.stringMatching(/"Ref":"IdentityUserPoolWebClient/),
    ]);
    // The staged assets: config.json as the app reads it, and the Vite build (hashed bundles, no source).
    const staged = (key: { 'Fn::Sub': string } | string) => path.join(app.outdir, `asset.${JSON.stringify(key).match(/([0-9a-f]{64})\.zip/)![1]}`);
    const [web, config] = deployment.Properties.SourceObjectKeys.map(staged);
    expect(JSON.parse(readFileSync(path.join(config, 'config.json'), 'utf8'))).toEqual({
      region: '<<marker:0xbaba:0>>',
      userPoolId: '<<marker:0xbaba:1>>',
      userPoolClientId: '<<marker:0xbaba:2>>',
      authMode: 'session',
    });
    expect(readFileSync(path.join(web, 'index.html'), 'utf8')).toMatch(/<script type="module" crossorigin src="\/assets\/index-[\w-]+\.js">/);
    expect(readdirSync(web).sort()).toEqual(['assets', 'favicon.svg', 'index.html', 'pcm-capture.js']);
    template.hasOutput('WebAppUrl', {});
    template.hasOutput('SpeechUrl', { Value: { 'Fn::Join': ['', ['wss://', { 'Fn::GetAtt': [Match.stringLikeRegexp('EdgeDistribution'), 'DomainName'] }, '/ws/speech']] } });
  });

  it('stages exactly what the Dockerfile copies as the image build context', () => {
    const assets = JSON.parse(readFileSync(path.join(app.outdir, 'Gatehouse.assets.json'), 'utf8'));
    const image = Object.values(assets.dockerImages as Record<string, { source: { directory: string; dockerFile: string; platform: string } }>)[0].source;
    expect(image).toMatchObject({ dockerFile: 'speech/Dockerfile', platform: 'linux/arm64' });
    const dir = path.join(app.outdir, image.directory);
    expect(readdirSync(dir).sort()).toEqual(['common', 'package-lock.json', 'package.json', 'protocol', 'speech', 'tsconfig.json']);
    const dockerfile = readFileSync(path.join(dir, 'speech/Dockerfile'), 'utf8');
    for (const [, source] of dockerfile.matchAll(/^COPY (?!--from)(\S+)/gm)) expect(existsSync(path.join(dir, source))).toBe(true);
    expect(dockerfile).toMatch(/^USER node$/m);
    expect(dockerfile).toMatch(/^HEALTHCHECK /m);
  });
});

describe('session security', () => {
  it('has a confidential session client for server-side sign-in, separate from the public web client', () => {
    template.hasResourceProperties('AWS::Cognito::UserPoolClient', {
      GenerateSecret: true,
      ExplicitAuthFlows: Match.arrayEquals(['ALLOW_ADMIN_USER_PASSWORD_AUTH', 'ALLOW_REFRESH_TOKEN_AUTH']),
      EnableTokenRevocation: true,
      AccessTokenValidity: 15,
    });
  });

  it('serves the session API (HTTP API, throttled, JSON access logs without cookies) under /api/* of the edge', () => {
    const [httpApiId] = resources('AWS::ApiGatewayV2::Api').find(([, r]) => r.Properties.ProtocolType === 'HTTP')!;
    const routes = resources('AWS::ApiGatewayV2::Route').filter(([, r]) => r.Properties.ApiId?.Ref === httpApiId).map(([, r]) => r.Properties.RouteKey);
    expect(routes.sort()).toEqual(['GET /api/session', 'POST /api/login', 'POST /api/logout', 'POST /api/ws-ticket']);
    const [, stage] = resources('AWS::ApiGatewayV2::Stage').find(([, r]) => r.Properties.ApiId?.Ref === httpApiId)!;
    expect(stage.Properties).toMatchObject({ StageName: '$default', AutoDeploy: true, DefaultRouteSettings: { ThrottlingRateLimit: 50, ThrottlingBurstLimit: 100 } });
    expect(stage.Properties.AccessLogSettings.Format).not.toMatch(/cookie|header|authorization|querystring|body/i);
    const [, dist] = resources('AWS::CloudFront::Distribution')[0];
    const api = dist.Properties.DistributionConfig.CacheBehaviors.find((b: { PathPattern: string }) => b.PathPattern === '/api/*');
    expect(api).toMatchObject({
      CachePolicyId: '4135ea2d-6df8-44a3-9df3-4b5a84be39ad',
      OriginRequestPolicyId: 'b689b0a8-53d0-40ab-baf2-68738e2966ac',
      ViewerProtocolPolicy: 'https-only',
    });
  });

  it('sweeps expired connections every minute from a schedule', () => {
    const [sweeperId] = resources('AWS::Lambda::Function').find(([id]) => id.startsWith('SweeperHandler'))!;
    template.hasResourceProperties('AWS::Events::Rule', {
      ScheduleExpression: 'rate(1 minute)',
      Targets: [Match.objectLike({ Arn: { 'Fn::GetAtt': [sweeperId, 'Arn'] } })],
    });
    template.hasResourceProperties('AWS::Lambda::Function', { Timeout: 55, Handler: 'index.handler', Environment: Match.objectLike({ Variables: Match.objectLike({ CONNECTIONS_URL: Match.anyValue() }) }) });
  });

  it('allows exactly the edge origin to open sockets, everywhere credentials are checked', () => {
    const origins = { 'Fn::Join': ['', ['https://', { 'Fn::GetAtt': [Match.stringLikeRegexp('EdgeDistribution'), 'DomainName'] }]] };
    for (const prefix of ['RealtimeAuthorizer', 'RealtimeMessage', 'SessionsHandler']) {
      const [, fn] = resources('AWS::Lambda::Function').find(([id]) => id.startsWith(prefix))!;
      expect(fn.Properties.Environment.Variables).toMatchObject({ ALLOWED_ORIGINS: expect.anything(), SESSION_CLIENT_ID: expect.anything(), TABLE_NAME: expect.anything() });
      expect(Match.objectLike(origins).test(fn.Properties.Environment.Variables.ALLOWED_ORIGINS).isSuccess).toBe(true);
    }
    template.hasResourceProperties('AWS::ECS::TaskDefinition', {
      ContainerDefinitions: [Match.objectLike({ Environment: Match.arrayWith([{ Name: 'ALLOWED_ORIGINS', Value: origins }]) })],
    });
  });

  it('scopes the Cognito permissions of credential checks to this user pool', () => {
    const cognito = resources('AWS::IAM::Policy').flatMap(([id, p]) =>
      (p.Properties.PolicyDocument.Statement as any[]).filter((s) => JSON.stringify(s.Action).includes('cognito-idp')).map((s) => ({ id, s })),
    );
    expect([...new Set(cognito.map((c) => c.id.replace(/[0-9A-F]{8}$/, '')))].sort()).toEqual([
      'RealtimeAuthorizerRoleDefaultPolicy',
      'RealtimeMessageRoleDefaultPolicy',
      'SessionsHandlerRoleDefaultPolicy',
      'SpeechTaskRoleDefaultPolicy',
    ]);
    for (const { s } of cognito) expect(s.Resource).toEqual({ 'Fn::GetAtt': [expect.stringMatching(/IdentityUserPool/), 'Arn'] });
    // Users cannot write the attributes display names come from (or anyone could take another's name).
    for (const [, client] of resources('AWS::Cognito::UserPoolClient')) expect(client.Properties.WriteAttributes).toEqual(['email']);
    // The authorizer reads display names (alongside its revocation read); $connect asks Cognito nothing.
    const authorizer = cognito.filter((c) => c.id.startsWith('RealtimeAuthorizerRole')).flatMap((c) => [c.s.Action].flat());
    expect(authorizer).toContain('cognito-idp:AdminGetUser');
    expect(cognito.filter((c) => !c.id.startsWith('RealtimeAuthorizerRole')).flatMap((c) => [c.s.Action].flat())).not.toContain('cognito-idp:AdminGetUser');
  });

  it('has no dependency cycle (CloudFormation would refuse it; synth does not check)', () => {
    const ids = new Set(Object.keys(template.toJSON().Resources));
    const refs = (v: unknown, out: Set<string>): Set<string> => {
      if (Array.isArray(v)) v.forEach((x) => refs(x, out));
      else if (v && typeof v === 'object') {
        const o = v as Record<string, unknown>;
        if (typeof o.Ref === 'string' && ids.has(o.Ref)) out.add(o.Ref);
        if (Array.isArray(o['Fn::GetAtt']) && ids.has(o['Fn::GetAtt'][0] as string)) out.add(o['Fn::GetAtt'][0] as string);
        Object.values(o).forEach((x) => refs(x, out));
      }
      return out;
    };
    const all = template.toJSON().Resources as Record<string, { Properties?: unknown; DependsOn?: string | string[] }>;
    const edges = new Map([...ids].map((id) => [id, new Set([...refs(all[id].Properties, new Set()), ...[all[id].DependsOn ?? []].flat()])]));
    const state = new Map<string, 1 | 2>();
    const visit = (id: string): boolean => {
      if (state.get(id) === 1) return true;
      if (state.get(id) === 2) return false;
      state.set(id, 1);
      for (const next of edges.get(id) ?? []) if (visit(next)) return true;
      state.set(id, 2);
      return false;
    };
    expect([...ids].some(visit)).toBe(false);
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

  it('adds bedrock:Retrieve on the configured knowledge base only, and a custom domain with TLS 1.2 and a WAF', () => {
    const stack = new GatehouseStack(new App({ context: cdkJson.context }), 'Kb', {
      speech: { knowledgeBaseId: 'KB12345678', voiceId: 'tiffany' },
      edge: {
        domain: {
          names: ['chat.example.com'],
          certificate: Certificate.fromCertificateArn(new Stack(), 'Cert', 'arn:aws:acm:us-east-1:111122223333:certificate/abc'),
        },
        webAclArn: 'arn:aws:wafv2:us-east-1:111122223333:global/webacl/gatehouse/abc',
      },
    });
    const t = Template.fromStack(stack);
    t.hasResourceProperties('AWS::IAM::Policy', {
      PolicyDocument: {
        Statement: Match.arrayWith([
          {
            Action: 'bedrock:Retrieve',
            Effect: 'Allow',
            Resource: { 'Fn::Join': ['', ['arn:', { Ref: 'AWS::Partition' }, ':bedrock:', { Ref: 'AWS::Region' }, ':', { Ref: 'AWS::AccountId' }, ':knowledge-base/KB12345678']] },
          },
        ]),
      },
    });
    t.hasResourceProperties('AWS::CloudFront::Distribution', {
      DistributionConfig: Match.objectLike({
        Aliases: ['chat.example.com'],
        ViewerCertificate: Match.objectLike({ MinimumProtocolVersion: 'TLSv1.2_2021', SslSupportMethod: 'sni-only' }),
        WebACLId: 'arn:aws:wafv2:us-east-1:111122223333:global/webacl/gatehouse/abc',
      }),
    });
    expect(JSON.stringify(template.toJSON())).not.toContain('bedrock:Retrieve');
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

  it('asks an existing function named by ARN, with the given namespaces, time-out and cache TTL, and deploys no sample', () => {
    const arn = 'arn:aws:lambda:eu-west-1:111122223333:function:run-access';
    const t = Template.fromStack(
      new GatehouseStack(new App({ context: cdkJson.context }), 'OwnHook', {
        roomHook: { namespaces: ['run', 'job'], functionArn: arn, timeout: Duration.millis(750), cacheTtl: Duration.seconds(0) },
      }),
    );
    expect(Object.keys(t.findResources('AWS::Lambda::Function')).filter((id) => id.startsWith('RoomHook'))).toEqual([]);
    t.hasResourceProperties('AWS::Lambda::Function', {
      Environment: {
        Variables: Match.objectLike({ ROOM_HOOK_FUNCTION: arn, ROOM_HOOK_NAMESPACES: 'run,job', ROOM_HOOK_TIMEOUT_MS: '750', ROOM_HOOK_CACHE_TTL_MS: '0' }),
      },
    });
    expect(lambdaGrants(Object.entries(t.findResources('AWS::IAM::Policy'))).filter((g) => g.resource === arn)).toEqual([
      { policy: expect.stringMatching(/^RealtimeMessageRole/), action: 'lambda:InvokeFunction', resource: arn },
    ]);
  });

  it('refuses room hook settings that could not work: built-in or malformed namespaces, a time-out the message function outlives', () => {
    const attempt = (roomHook: RoomHookSettings) => () =>
      new GatehouseStack(new App({ context: cdkJson.context }), 'BadHook', { roomHook });
    expect(attempt({ namespaces: ['private'], functionArn: 'arn:aws:lambda:eu-west-1:111122223333:function:f' })).toThrow('is built in');
    expect(attempt({ namespaces: ['Run'], functionArn: 'arn:aws:lambda:eu-west-1:111122223333:function:f' })).toThrow('must be 1-16 characters');
    expect(attempt({ namespaces: ['run'], functionArn: 'arn:aws:lambda:eu-west-1:111122223333:function:f', timeout: Duration.seconds(10) })).toThrow('must be shorter');
  });

  it('reads the room hook from context: sample, an ARN or none, with its namespaces', () => {
    expect(() => synth({ roomHook: 'sample', roomHookNamespaces: '' })).toThrow('Context roomHook needs roomHookNamespaces');
    expect(() => synth({ roomHook: 'my-function' })).toThrow('Context roomHook must be "sample", "none" or a Lambda function ARN');
    const { template: t } = synth({ roomHook: 'none', stackName: 'NoHook' });
    expect(Object.keys(t.findResources('AWS::Lambda::Function')).filter((id) => id.startsWith('RoomHook'))).toEqual([]);
    expect(JSON.stringify(t.toJSON())).not.toContain('ROOM_HOOK');
    // Functions are invoked only to hand big rooms to the fan-out workers.
    const [workerId] = Object.keys(t.findResources('AWS::Lambda::Function')).filter((id) => id.startsWith('RoomFanoutWorker'));
    expect(lambdaGrants(Object.entries(t.findResources('AWS::IAM::Policy'))).filter((g) => JSON.stringify(g.resource) !== JSON.stringify({ 'Fn::GetAtt': [workerId, 'Arn'] }))).toEqual([]);
  });

  it('reads tenants, the query-token switch and the web sign-in mode from context', () => {
    const { app: a, template: t } = synth({ tenants: 'acme, initech', allowQueryToken: 'false', webAuthMode: 'token', stackName: 'FromContext' });
    t.hasResourceProperties('AWS::Cognito::UserPoolGroup', { GroupName: 'tenant:initech' });
    t.hasResourceProperties('AWS::Lambda::Function', {
      Environment: { Variables: Match.objectLike({ ALLOW_QUERY_TOKEN: 'false' }) },
    });
    const [deployment] = Object.values(t.findResources('Custom::CDKBucketDeployment'));
    const hash = JSON.stringify(deployment.Properties.SourceObjectKeys[1]).match(/([0-9a-f]{64})\.zip/)![1];
    expect(JSON.parse(readFileSync(path.join(a.outdir, `asset.${hash}`, 'config.json'), 'utf8'))).toMatchObject({ authMode: 'token' });
    expect(() => synth({ webAuthMode: 'cookies' })).toThrow('Context webAuthMode must be "session" or "token", not "cookies".');
  });
});
