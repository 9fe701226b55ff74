import { Aws, CfnRule, Duration, Fn, RemovalPolicy, Stack, Token, Validations } from 'aws-cdk-lib';
import * as cognito from 'aws-cdk-lib/aws-cognito';
import { Construct } from 'constructs';
import { GROUP_DEFAULTS } from '../protocol';

/** Cognito's form of a user pool id, `<region>_<id>` (e.g. `eu-west-1_AbCdEf123`); group 1 is the region. */
export const USER_POOL_ID_PATTERN = /^([a-z]{2}(?:-[a-z]+)+-\d+)_[0-9A-Za-z]+$/;
/** Cognito's form of an app client id: word characters and `+`, 1 to 128 of them. */
export const USER_POOL_CLIENT_ID_PATTERN = /^[\w+]{1,128}$/;

/**
 * An existing Cognito user pool and app clients to use instead of creating them (see README, "Bring your own user
 * pool"). Nothing of the pool is created or changed: no clients, no groups, no settings. The pool must be in the
 * stack's region (the functions call Cognito in their own region; deploying elsewhere fails a template rule).
 */
export interface ExistingUserPool {
  /** The pool's id, `<region>_<id>` (e.g. `eu-west-1_AbCdEf123`). */
  readonly userPoolId: string;
  /**
   * The public app client (no secret) the web app and CLIs sign in with: the authorizer accepts its access tokens.
   * Needs ALLOW_USER_SRP_AUTH (web app), ALLOW_USER_PASSWORD_AUTH (CLI) and ALLOW_REFRESH_TOKEN_AUTH.
   */
  readonly webClientId: string;
  /**
   * The confidential app client (with a secret, ALLOW_ADMIN_USER_PASSWORD_AUTH and ALLOW_REFRESH_TOKEN_AUTH) of
   * cookie sessions. Its secret never enters the template: the functions read it from Cognito at run time
   * (DescribeUserPoolClient on this pool, IAM-authorized), as they do with the client the stack creates.
   * @default none: cookie sessions are off (`POST /api/login` answers 501), the web app signs in with tokens
   * (webAuthMode 'token'), and the functions get no Cognito sign-in, refresh or sign-out permissions
   */
  readonly sessionClientId?: string;
}

export interface IdentityProps {
  /**
   * Use this existing pool and its clients instead of creating them. The pool's own settings are then the pool
   * owner's: `selfSignUpEnabled`, `mfa`, `threatProtection`, `removalPolicy` and `tenants` are refused with it.
   * @default none: the stack creates the pool, a web client, a session client and the admin group
   */
  readonly existingUserPool?: ExistingUserPool;
  /** Let anyone create an account. Off: users are created by an administrator. @default false */
  readonly selfSignUpEnabled?: boolean;
  /** Multi-factor authentication (TOTP). @default cognito.Mfa.OPTIONAL */
  readonly mfa?: cognito.Mfa;
  /**
   * Access-token validity: also the longest lifetime the authorizer accepts (tokens claiming a longer one are
   * refused). With an existing pool, set it to its clients' access-token validity. @default 15 minutes
   */
  readonly accessTokenValidity?: Duration;
  /**
   * Refresh-token validity: how long a browser session can last without a new sign-in. With an existing pool, set
   * it to the session client's refresh-token validity. @default 12 hours
   */
  readonly refreshTokenValidity?: Duration;
  /** Name of the administrators' group (may join admin:* rooms). @default 'admin' */
  readonly adminGroupName?: string;
  /** Prefix of the groups that put a user in a tenant (`tenant:<id>`). @default 'tenant:' */
  readonly tenantGroupPrefix?: string;
  /** Tenants to create groups for at deploy time; more can be added later with the CLI. @default none */
  readonly tenants?: string[];
  /**
   * Cognito threat protection (Plus feature plan: compromised-credential checks, adaptive authentication). It is
   * billed per monthly active user, so it is a decision for the deployer. @default false
   */
  readonly threatProtection?: boolean;
  /** What happens to the pool (and its users) when the stack is deleted. @default RemovalPolicy.RETAIN */
  readonly removalPolicy?: RemovalPolicy;
}

/** Props that configure a pool the stack creates, and so contradict an existing one. */
const CREATED_POOL_PROPS = ['selfSignUpEnabled', 'mfa', 'threatProtection', 'removalPolicy', 'tenants'] as const;

/** Why these existing-pool props cannot work (a malformed id, a client named twice, a created-pool prop), or undefined. */
export function existingUserPoolProblem(props: IdentityProps): string | undefined {
  const existing = props.existingUserPool;
  if (!existing) return undefined;
  const literal = (value: string) => !Token.isUnresolved(value);
  if (literal(existing.userPoolId) && !USER_POOL_ID_PATTERN.test(existing.userPoolId)) {
    return `identity.existingUserPool.userPoolId must be a Cognito user pool id, <region>_<id> (e.g. eu-west-1_AbCdEf123), not "${existing.userPoolId}".`;
  }
  for (const key of ['webClientId', 'sessionClientId'] as const) {
    const value = existing[key];
    if (value !== undefined && literal(value) && !USER_POOL_CLIENT_ID_PATTERN.test(value)) {
      return `identity.existingUserPool.${key} must be a Cognito app client id (letters, digits, _ and +), not "${value}".`;
    }
  }
  if (existing.sessionClientId !== undefined && existing.sessionClientId === existing.webClientId) {
    return 'identity.existingUserPool.sessionClientId must differ from webClientId: the session client is confidential, the web client public.';
  }
  const contradicting = CREATED_POOL_PROPS.filter((key) => (key === 'tenants' ? (props.tenants?.length ?? 0) > 0 : props[key] !== undefined));
  if (contradicting.length > 0) {
    return `identity.${contradicting.join(', identity.')} configure${contradicting.length === 1 ? 's' : ''} a pool the stack creates; with identity.existingUserPool, manage the existing pool (and its groups) yourself.`;
  }
  return undefined;
}

/** The pool and clients the rest of the stack uses, created or imported. */
interface Pool {
  readonly userPool: cognito.IUserPool;
  readonly webClient: cognito.IUserPoolClient;
  readonly sessionClient?: cognito.IUserPoolClient;
}

/**
 * The Cognito user pool and the web app's client: created here, or an existing pool's (`existingUserPool`).
 * Tenancy is carried by admin-managed groups named `tenant:<id>`: they appear in `cognito:groups` of access tokens,
 * need no trigger, and the client cannot forge them.
 */
export class Identity extends Construct {
  readonly userPool: cognito.IUserPool;
  readonly webClient: cognito.IUserPoolClient;
  /**
   * The confidential client of cookie sessions: used server-side only, with its secret. Undefined when an existing
   * pool is used without one: cookie sessions are then off.
   */
  readonly sessionClient?: cognito.IUserPoolClient;
  readonly refreshTokenValidity: Duration;
  readonly accessTokenValidity: Duration;
  readonly adminGroupName: string;
  readonly tenantGroupPrefix: string;

  constructor(scope: Construct, id: string, props: IdentityProps = {}) {
    super(scope, id);
    const problem = existingUserPoolProblem(props);
    if (problem) throw new Error(problem);
    this.accessTokenValidity = props.accessTokenValidity ?? Duration.minutes(15);
    this.refreshTokenValidity = props.refreshTokenValidity ?? Duration.hours(12);
    this.adminGroupName = props.adminGroupName ?? GROUP_DEFAULTS.adminGroup;
    this.tenantGroupPrefix = props.tenantGroupPrefix ?? GROUP_DEFAULTS.tenantGroupPrefix;
    const pool = props.existingUserPool ? this.importPool(props.existingUserPool) : this.createPool(props);
    this.userPool = pool.userPool;
    this.webClient = pool.webClient;
    if (pool.sessionClient) this.sessionClient = pool.sessionClient;
  }

  /** An existing pool and its clients, by id; and a rule that refuses a deployment to another region than the pool's. */
  private importPool(existing: ExistingUserPool): Pool {
    const userPool = cognito.UserPool.fromUserPoolId(this, 'UserPool', existing.userPoolId);
    const region = Token.isUnresolved(existing.userPoolId) ? undefined : USER_POOL_ID_PATTERN.exec(existing.userPoolId)?.[1];
    const stackRegion = Stack.of(this).region;
    if (region && !Token.isUnresolved(stackRegion) && stackRegion !== region) {
      throw new Error(`identity.existingUserPool.userPoolId ${existing.userPoolId} is in ${region}, the stack in ${stackRegion}: the pool must be in the stack's region.`);
    }
    if (region) {
      new CfnRule(this, 'UserPoolInStackRegion', {
        assertions: [
          {
            assert: Fn.conditionEquals(Aws.REGION, region),
            assertDescription: `The existing user pool ${existing.userPoolId} is in ${region}: deploy this stack to ${region}.`,
          },
        ],
      });
    }
    return {
      userPool,
      webClient: cognito.UserPoolClient.fromUserPoolClientId(this, 'WebClient', existing.webClientId),
      ...(existing.sessionClientId ? { sessionClient: cognito.UserPoolClient.fromUserPoolClientId(this, 'SessionClient', existing.sessionClientId) } : {}),
    };
  }

  /** The pool, its two clients and its groups, with their cdk-nag acknowledgements. */
  private createPool(props: IdentityProps): Pool {
    const threatProtection = props.threatProtection ?? false;
    const retain = (props.removalPolicy ?? RemovalPolicy.RETAIN) === RemovalPolicy.RETAIN;

    const userPool = new cognito.UserPool(this, 'UserPool', {
      signInAliases: { email: true },
      signInCaseSensitive: false,
      autoVerify: { email: true },
      standardAttributes: { email: { required: true, mutable: true } },
      selfSignUpEnabled: props.selfSignUpEnabled ?? false,
      passwordPolicy: {
        minLength: 12,
        requireLowercase: true,
        requireUppercase: true,
        requireDigits: true,
        requireSymbols: true,
        tempPasswordValidity: Duration.days(3),
      },
      mfa: props.mfa ?? cognito.Mfa.OPTIONAL,
      mfaSecondFactor: { otp: true, sms: false },
      accountRecovery: cognito.AccountRecovery.EMAIL_ONLY,
      featurePlan: threatProtection ? cognito.FeaturePlan.PLUS : cognito.FeaturePlan.ESSENTIALS,
      ...(threatProtection ? { standardThreatProtectionMode: cognito.StandardThreatProtectionMode.FULL_FUNCTION } : {}),
      deletionProtection: retain,
      removalPolicy: props.removalPolicy ?? RemovalPolicy.RETAIN,
    });

    // Display names come from `name` and `preferred_username` (lambda/core/profiles.ts): only administrators may set
    // them, or anyone could take another's name with UpdateUserAttributes. Users may write their email (sign-up).
    const writeAttributes = new cognito.ClientAttributes().withStandardAttributes({ email: true });
    const webClient = userPool.addClient('WebClient', {
      writeAttributes,
      // A browser cannot keep a secret: public client, SRP for the web app, password flow for CLIs and tests.
      generateSecret: false,
      authFlows: { userSrp: true, userPassword: true },
      // No hosted UI: without this CDK turns on the implicit and code flows with a callback of https://example.com.
      disableOAuth: true,
      accessTokenValidity: this.accessTokenValidity,
      idTokenValidity: this.accessTokenValidity,
      refreshTokenValidity: this.refreshTokenValidity,
      enableTokenRevocation: true,
      preventUserExistenceErrors: true,
    });

    // Backend-for-frontend sign-in: the session API signs users in server-side (ADMIN_USER_PASSWORD_AUTH with the
    // client secret) and keeps their tokens; the page only ever holds an HttpOnly cookie.
    const sessionClient = userPool.addClient('SessionClient', {
      writeAttributes,
      generateSecret: true,
      authFlows: { adminUserPassword: true },
      disableOAuth: true,
      accessTokenValidity: this.accessTokenValidity,
      idTokenValidity: this.accessTokenValidity,
      refreshTokenValidity: this.refreshTokenValidity,
      enableTokenRevocation: true,
      preventUserExistenceErrors: true,
    });

    new cognito.CfnUserPoolGroup(this, 'AdminGroup', {
      userPoolId: userPool.userPoolId,
      groupName: this.adminGroupName,
      description: 'Gatehouse administrators: may join admin:* rooms.',
    });
    for (const tenant of props.tenants ?? []) {
      new cognito.CfnUserPoolGroup(this, `Tenant-${tenant}`, {
        userPoolId: userPool.userPoolId,
        groupName: `${this.tenantGroupPrefix}${tenant}`,
        description: `Members of tenant ${tenant}.`,
      });
    }

    if (props.mfa !== cognito.Mfa.REQUIRED) {
      Validations.of(userPool).acknowledge({
        id: 'AwsSolutions-COG2',
        reason:
          'MFA is optional by design (users enrol TOTP themselves); deployers who need it set the mfa prop to REQUIRED.',
      });
    }
    if (!threatProtection) {
      for (const id of ['AwsSolutions-COG3', 'AwsSolutions-COG8']) {
        Validations.of(userPool).acknowledge({
          id,
          reason:
            'Threat protection needs the Plus feature plan, billed per monthly active user: a cost decision for the deployer, who enables both with the threatProtection prop.',
        });
      }
    }
    return { userPool, webClient, sessionClient };
  }
}
