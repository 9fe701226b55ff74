import { Aws, Duration, Names, RemovalPolicy, Stack, Validations } from 'aws-cdk-lib';
import type * as apigwv2 from 'aws-cdk-lib/aws-apigatewayv2';
import type * as acm from 'aws-cdk-lib/aws-certificatemanager';
import * as cloudfront from 'aws-cdk-lib/aws-cloudfront';
import * as origins from 'aws-cdk-lib/aws-cloudfront-origins';
import type * as elbv2 from 'aws-cdk-lib/aws-elasticloadbalancingv2';
import * as logs from 'aws-cdk-lib/aws-logs';
import * as s3 from 'aws-cdk-lib/aws-s3';
import * as s3deploy from 'aws-cdk-lib/aws-s3-deployment';
import { Construct } from 'constructs';
import { SESSION_API_PREFIX, SOCKET_PATHS, WEB_CONFIG_PATH, type WebConfig } from '../protocol';
import { SPEECH_LISTENER_PORT } from './speech-service';
import { ensureWebBuild } from '../web/build';

export const REALTIME_PATH = SOCKET_PATHS.realtime;
export const SPEECH_PATH = SOCKET_PATHS.speech;

export interface EdgeProps {
  readonly api: apigwv2.IWebSocketApi;
  readonly stageName: string;
  readonly speechLoadBalancer: elbv2.INetworkLoadBalancer;
  /** Domain of the session API (HTTP API), served under /api/*. */
  readonly sessionApiDomain: string;
  /** Public settings the web app reads from /config.json (pool, client, region). */
  readonly webConfig: WebConfig;
  /** Folder of the web app's static files. @default the production build, web/dist (built when stale) */
  readonly webAssets?: string;
  /** A custom domain: its names and an ACM certificate in us-east-1. */
  readonly domain?: { names: string[]; certificate: acm.ICertificate };
  /** ARN of a WAF web ACL (CLOUDFRONT scope, us-east-1). */
  readonly webAclArn?: string;
  /** @default PRICE_CLASS_100 */
  readonly priceClass?: cloudfront.PriceClass;
  /** Days CloudFront access logs are kept. @default 90 */
  readonly logRetentionDays?: number;
}

/**
 * The viewer-request function of a WebSocket path: refuses a token in the query string, then runs `body`.
 * Keys are compared decoded, because API Gateway decodes them (`?%74oken=` reaches the authorizer as `token`) and
 * CloudFront's event documentation does not say it decodes them first; a key that does not decode is refused too.
 * CloudFront Functions runtime 2.0 is ES5.1 with some ES6, so the code keeps to var, for-in and try/catch.
 */
export function socketFunctionCode(body: string): string {
  return `function handler(event) {
  var request = event.request;
  for (var key in request.querystring) {
    var name = null;
    try { name = decodeURIComponent(key); } catch (e) { name = null; }
    if (name === null || name === 'token') {
      return { statusCode: 400, statusDescription: 'Bad Request',
        headers: { 'content-type': { value: 'text/plain' } },
        body: { encoding: 'text', data: 'Tokens are not accepted in URLs here: offer the token as the WebSocket subprotocol bearer.<token>.' } };
    }
  }
${body}
  return request;
}`;
}

/**
 * One CloudFront distribution for the whole product: the web app from a private bucket (origin access control),
 * `/ws/realtime` to the API Gateway WebSocket stage, and `/ws/speech` to the speech NLB through a VPC origin.
 * Every WebSocket behaviour disables caching and forwards what a handshake needs; none accepts a token in the URL,
 * because CloudFront's access logs record query strings.
 */
export class Edge extends Construct {
  readonly distribution: cloudfront.Distribution;
  readonly webBucket: s3.Bucket;
  readonly domainName: string;

  constructor(scope: Construct, id: string, props: EdgeProps) {
    super(scope, id);
    const stack = Stack.of(this);

    const logBucket = new s3.Bucket(this, 'Logs', {
      encryption: s3.BucketEncryption.S3_MANAGED,
      blockPublicAccess: s3.BlockPublicAccess.BLOCK_ALL,
      enforceSSL: true,
      // CloudFront standard logs are delivered through a bucket ACL.
      objectOwnership: s3.ObjectOwnership.OBJECT_WRITER,
      lifecycleRules: [{ expiration: Duration.days(props.logRetentionDays ?? 90) }],
      removalPolicy: RemovalPolicy.RETAIN,
    });
    Validations.of(logBucket).acknowledge({
      id: 'AwsSolutions-S1',
      reason: 'This is the log bucket itself (CloudFront and S3 access logs); logging its own access would recurse.',
    });

    this.webBucket = new s3.Bucket(this, 'Web', {
      encryption: s3.BucketEncryption.S3_MANAGED,
      blockPublicAccess: s3.BlockPublicAccess.BLOCK_ALL,
      enforceSSL: true,
      serverAccessLogsBucket: logBucket,
      serverAccessLogsPrefix: 's3-web/',
      // The bucket holds only the build (re-uploaded by every deploy): `cdk destroy` empties it, then deletes it.
      removalPolicy: RemovalPolicy.DESTROY,
      autoDeleteObjects: true,
    });

    const viewerFunction = (name: string, body: string) =>
      new cloudfront.Function(this, name, {
        runtime: cloudfront.FunctionRuntime.JS_2_0,
        comment: `Gatehouse ${name}`,
        code: cloudfront.FunctionCode.fromInline(socketFunctionCode(body)),
      });
    // API Gateway WebSocket APIs have no path routing: the stage is the path.
    const realtimeFunction = viewerFunction('RealtimePath', `  request.uri = '/${props.stageName}';`);
    const speechFunction = viewerFunction('SpeechPath', '');
    // The single-page app's own routes (paths without a file extension) get index.html; files are served as they
    // are, and a missing one stays an error. Only on the default behaviour: /api/* and the sockets answer for
    // themselves (a distribution's custom error responses would apply to them as well).
    const appRoutes = new cloudfront.Function(this, 'AppRoutes', {
      runtime: cloudfront.FunctionRuntime.JS_2_0,
      comment: 'Gatehouse AppRoutes',
      code: cloudfront.FunctionCode.fromInline(
        `function handler(event) {\n  var request = event.request;\n  var last = request.uri.split('/').pop();\n  if (request.uri !== '/' && last.indexOf('.') === -1) request.uri = '/index.html';\n  return request;\n}`,
      ),
    });
    // Account-wide names: the region makes them unique when the same stack name is deployed to several regions.
    // (A region name is at most 14 characters.)
    const regional = (kind: string, maxLength: number) =>
      `${Names.uniqueResourceName(this, { maxLength: maxLength - kind.length - 16, allowedSpecialCharacters: '-_' })}-${kind}-${Aws.REGION}`;

    const websocket = (fn: cloudfront.Function, originRequestPolicy: cloudfront.IOriginRequestPolicy) => ({
      viewerProtocolPolicy: cloudfront.ViewerProtocolPolicy.HTTPS_ONLY,
      allowedMethods: cloudfront.AllowedMethods.ALLOW_ALL,
      cachePolicy: cloudfront.CachePolicy.CACHING_DISABLED,
      originRequestPolicy,
      functionAssociations: [{ function: fn, eventType: cloudfront.FunctionEventType.VIEWER_REQUEST }],
    });

    const securityHeaders = new cloudfront.ResponseHeadersPolicy(this, 'SecurityHeaders', {
      responseHeadersPolicyName: regional('headers', 128),
      comment: 'Gatehouse web app security headers',
      securityHeadersBehavior: {
        contentSecurityPolicy: {
          contentSecurityPolicy: [
            "default-src 'self'",
            "script-src 'self'",
            "style-src 'self'",
            "img-src 'self' data:",
            // Sockets and /api are same-origin; token mode's Amplify talks to Cognito in the stack's region.
            `connect-src 'self' https://cognito-idp.${stack.region}.amazonaws.com`,
            "frame-ancestors 'none'",
            "base-uri 'self'",
            "form-action 'self'",
          ].join('; '),
          override: true,
        },
        strictTransportSecurity: { accessControlMaxAge: Duration.days(365), includeSubdomains: true, preload: false, override: true },
        contentTypeOptions: { override: true },
        frameOptions: { frameOption: cloudfront.HeadersFrameOption.DENY, override: true },
        referrerPolicy: { referrerPolicy: cloudfront.HeadersReferrerPolicy.STRICT_ORIGIN_WHEN_CROSS_ORIGIN, override: true },
      },
    });

    this.distribution = new cloudfront.Distribution(this, 'Distribution', {
      comment: 'Gatehouse: web app and WebSocket back ends',
      defaultRootObject: 'index.html',
      httpVersion: cloudfront.HttpVersion.HTTP2_AND_3,
      priceClass: props.priceClass ?? cloudfront.PriceClass.PRICE_CLASS_100,
      ...(props.domain
        ? { domainNames: props.domain.names, certificate: props.domain.certificate, minimumProtocolVersion: cloudfront.SecurityPolicyProtocol.TLS_V1_2_2021 }
        : {}),
      ...(props.webAclArn ? { webAclId: props.webAclArn } : {}),
      enableLogging: true,
      logBucket,
      logFilePrefix: 'cloudfront/',
      logIncludesCookies: false,
      defaultBehavior: {
        origin: origins.S3BucketOrigin.withOriginAccessControl(this.webBucket, {
          originAccessControl: new cloudfront.S3OriginAccessControl(this, 'WebAccess', { originAccessControlName: regional('oac', 64) }),
        }),
        viewerProtocolPolicy: cloudfront.ViewerProtocolPolicy.REDIRECT_TO_HTTPS,
        cachePolicy: cloudfront.CachePolicy.CACHING_OPTIMIZED,
        responseHeadersPolicy: securityHeaders,
        functionAssociations: [{ function: appRoutes, eventType: cloudfront.FunctionEventType.VIEWER_REQUEST }],
      },
      additionalBehaviors: {
        // API Gateway refuses a Host header that is not its own: forward everything else.
        [REALTIME_PATH]: {
          origin: new origins.HttpOrigin(`${props.api.apiId}.execute-api.${stack.region}.${stack.urlSuffix}`, {
            protocolPolicy: cloudfront.OriginProtocolPolicy.HTTPS_ONLY,
            originSslProtocols: [cloudfront.OriginSslPolicy.TLS_V1_2],
          }),
          ...websocket(realtimeFunction, cloudfront.OriginRequestPolicy.ALL_VIEWER_EXCEPT_HOST_HEADER),
        },
        // The session API sets and reads the HttpOnly cookie: it must be same-origin with the web app.
        [`${SESSION_API_PREFIX}/*`]: {
          origin: new origins.HttpOrigin(props.sessionApiDomain, {
            protocolPolicy: cloudfront.OriginProtocolPolicy.HTTPS_ONLY,
            originSslProtocols: [cloudfront.OriginSslPolicy.TLS_V1_2],
          }),
          viewerProtocolPolicy: cloudfront.ViewerProtocolPolicy.HTTPS_ONLY,
          allowedMethods: cloudfront.AllowedMethods.ALLOW_ALL,
          cachePolicy: cloudfront.CachePolicy.CACHING_DISABLED,
          originRequestPolicy: cloudfront.OriginRequestPolicy.ALL_VIEWER_EXCEPT_HOST_HEADER,
        },
        [SPEECH_PATH]: {
          origin: origins.VpcOrigin.withNetworkLoadBalancer(props.speechLoadBalancer, {
            vpcOriginName: regional('speech', 64),
            httpPort: SPEECH_LISTENER_PORT,
            protocolPolicy: cloudfront.OriginProtocolPolicy.HTTP_ONLY,
            readTimeout: Duration.seconds(60),
          }),
          ...websocket(speechFunction, cloudfront.OriginRequestPolicy.ALL_VIEWER),
        },
      },
      // No custom error responses: they would apply to every behaviour, turning an /api/* 403 into the web app.
    });
    this.domainName = props.domain?.names[0] ?? this.distribution.distributionDomainName;

    const deployment = new s3deploy.BucketDeployment(this, 'WebApp', {
      destinationBucket: this.webBucket,
      sources: [
        s3deploy.Source.asset(props.webAssets ?? ensureWebBuild()),
        // No socket URLs: the app opens /ws/* on the origin it was loaded from, whichever of the distribution's
        // names that is, so its host-only session cookie and its CSP ('self') both apply.
        s3deploy.Source.jsonData(WEB_CONFIG_PATH.slice(1), props.webConfig),
      ],
      distribution: this.distribution,
      distributionPaths: ['/index.html', WEB_CONFIG_PATH],
      memoryLimit: 512,
      logGroup: new logs.LogGroup(this, 'WebAppDeploymentLogs', { retention: logs.RetentionDays.ONE_MONTH }),
    });
    // BucketDeployment's handler is a CDK singleton at stack level; its findings are CDK's design, scoped here.
    const handler = stack.node.children.find((c) => c.node.id.startsWith('Custom::CDKBucketDeployment'));
    if (handler) {
      Validations.of(handler).acknowledge({
        id: 'AwsSolutions-L1',
        reason: 'CDK pins the BucketDeployment handler runtime (Python) to the version its AWS CLI layer supports.',
      });
      Validations.of(handler).acknowledge({
        id: 'AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole]',
        reason: "CDK's deployment handler writes only its own logs with the AWS-managed basic execution policy.",
      });
      Validations.of(handler).acknowledge({
        id: 'AwsSolutions-IAM5[Resource::*]',
        reason: 'cloudfront:CreateInvalidation and GetInvalidation have no resource-level scoping in the policy CDK generates; they only refresh index.html and config.json after a deployment.',
      });
    }
    const bucketRef = `<${stack.getLogicalId(this.webBucket.node.defaultChild as s3.CfnBucket)}.Arn>`;
    for (const finding of [
      'Action::s3:Abort*',
      'Action::s3:DeleteObject*',
      'Action::s3:GetBucket*',
      'Action::s3:GetObject*',
      'Action::s3:List*',
      `Resource::${bucketRef}/*`,
      'Resource::arn:<AWS::Partition>:s3:::cdk-hnb659fds-assets-<AWS::AccountId>-<AWS::Region>/*',
    ]) {
      Validations.of(deployment.handlerRole).acknowledge({
        id: `AwsSolutions-IAM5[${finding}]`,
        reason: 'The web-app deployment copies from the CDK asset bucket into the web bucket and syncs it (deletes stale files): CDK grants exactly those two buckets.',
      });
    }

    if (!props.domain) {
      Validations.of(this.distribution).acknowledge({
        id: 'AwsSolutions-CFR4',
        reason: 'Without a custom domain CloudFront serves its default *.cloudfront.net certificate, whose policy cannot be set; pass the domain prop (ACM certificate) to enforce TLS 1.2_2021.',
      });
    }
    if (!props.webAclArn) {
      Validations.of(this.distribution).acknowledge({
        id: 'AwsSolutions-CFR2',
        reason: 'A WAF web ACL is billed per rule and request and must live in us-east-1; deployers attach theirs with the webAclArn prop.',
      });
    }
    Validations.of(this.distribution).acknowledge({
      id: 'AwsSolutions-CFR1',
      reason: 'Tenants may be anywhere; a deployer who must restrict countries adds a geo restriction to the distribution.',
    });
  }
}
