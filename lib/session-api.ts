import { Stack, Validations } from 'aws-cdk-lib';
import { AccessLogFormat } from 'aws-cdk-lib/aws-apigateway';
import * as apigwv2 from 'aws-cdk-lib/aws-apigatewayv2';
import { HttpLambdaIntegration } from 'aws-cdk-lib/aws-apigatewayv2-integrations';
import type * as dynamodb from 'aws-cdk-lib/aws-dynamodb';
import type { NodejsFunction } from 'aws-cdk-lib/aws-lambda-nodejs';
import * as logs from 'aws-cdk-lib/aws-logs';
import { Construct } from 'constructs';
import { handlerFunction } from './handler-function';
import type { RealtimeApi } from './realtime-api';

export const SESSION_ROUTES = ['POST /api/login', 'GET /api/session', 'POST /api/logout', 'POST /api/ws-ticket'] as const;

export interface SessionApiProps {
  readonly realtime: RealtimeApi;
  readonly table: dynamodb.ITable;
  /** Requests per second across the API (sign-in attempts included). @default { rateLimit: 50, burstLimit: 100 } */
  readonly throttle?: { rateLimit: number; burstLimit: number };
}

/**
 * The session API under /api (served through the same CloudFront distribution): cookie sign-in for the web app
 * (backend for frontend), session status, sign-out that disconnects, and one-time WebSocket tickets.
 */
export class SessionApi extends Construct {
  readonly httpApi: apigwv2.HttpApi;
  readonly handler: NodejsFunction;

  constructor(scope: Construct, id: string, props: SessionApiProps) {
    super(scope, id);
    const { realtime } = props;
    this.handler = handlerFunction(this, 'Handler', {
      entry: 'api.ts',
      environment: realtime.realtimeEnvironment,
      logRetention: realtime.logRetention,
    });
    realtime.grantStoreAccess(this.handler, props.table);
    realtime.grantManageConnections(this.handler);
    realtime.grantAuthentication(this.handler, props.table);

    this.httpApi = new apigwv2.HttpApi(this, 'Api', { description: 'Gatehouse session API', createDefaultStage: false });
    const integration = new HttpLambdaIntegration('Handler', this.handler);
    for (const route of SESSION_ROUTES) {
      const [method, path] = route.split(' ');
      const [created] = this.httpApi.addRoutes({ path, methods: [method as apigwv2.HttpMethod], integration });
      Validations.of(created).acknowledge({
        id: 'AwsSolutions-APIG4',
        reason:
          'Sign-in is unauthenticated by definition; the other routes authenticate each request in the handler (session cookie or bearer token) with the same code as the WebSocket authorizer.',
      });
    }
    const accessLogs = new logs.LogGroup(this, 'AccessLogs', { retention: realtime.logRetention });
    const throttle = props.throttle ?? { rateLimit: 50, burstLimit: 100 };
    new apigwv2.HttpStage(this, 'Stage', {
      httpApi: this.httpApi,
      stageName: '$default',
      autoDeploy: true,
      throttle,
      accessLogSettings: {
        destination: new apigwv2.LogGroupLogDestination(accessLogs),
        // Context variables only: no header, no cookie, no body, no query string.
        format: AccessLogFormat.custom(
          JSON.stringify({
            requestId: '$context.requestId',
            time: '$context.requestTimeEpoch',
            ip: '$context.identity.sourceIp',
            method: '$context.httpMethod',
            path: '$context.path',
            status: '$context.status',
            latency: '$context.responseLatency',
            error: '$context.error.message',
            integrationError: '$context.integrationErrorMessage',
          }),
        ),
      },
    });
  }

  /** The API's own domain (the CloudFront origin for /api/*). */
  get domainName(): string {
    const stack = Stack.of(this);
    return `${this.httpApi.apiId}.execute-api.${stack.region}.${stack.urlSuffix}`;
  }
}

