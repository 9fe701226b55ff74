import { Duration, RemovalPolicy, Validations } from 'aws-cdk-lib';
import * as cognito from 'aws-cdk-lib/aws-cognito';
import { Construct } from 'constructs';
import { GROUP_DEFAULTS } from '../protocol';

export interface IdentityProps {
  /** Let anyone create an account. Off: users are created by an administrator. @default false */
  readonly selfSignUpEnabled?: boolean;
  /** Multi-factor authentication (TOTP). @default cognito.Mfa.OPTIONAL */
  readonly mfa?: cognito.Mfa;
  /** Access-token validity: also the longest lifetime the authorizer accepts. @default 15 minutes */
  readonly accessTokenValidity?: Duration;
  /** Refresh-token validity: how long a browser session can last without a new sign-in. @default 12 hours */
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

/**
 * The Cognito user pool and the web app's client. Tenancy is carried by admin-managed groups named
 * `tenant:<id>`: they appear in `cognito:groups` of access tokens, need no trigger, and the client cannot forge them.
 */
export class Identity extends Construct {
  readonly userPool: cognito.UserPool;
  readonly webClient: cognito.UserPoolClient;
  /** The confidential client of cookie sessions: used server-side only, with its secret. */
  readonly sessionClient: cognito.UserPoolClient;
  readonly refreshTokenValidity: Duration;
  readonly accessTokenValidity: Duration;
  readonly adminGroupName: string;
  readonly tenantGroupPrefix: string;

  constructor(scope: Construct, id: string, props: IdentityProps = {}) {
    super(scope, id);
    this.accessTokenValidity = props.accessTokenValidity ?? Duration.minutes(15);
    this.adminGroupName = props.adminGroupName ?? GROUP_DEFAULTS.adminGroup;
    this.tenantGroupPrefix = props.tenantGroupPrefix ?? GROUP_DEFAULTS.tenantGroupPrefix;
    const threatProtection = props.threatProtection ?? false;
    const retain = (props.removalPolicy ?? RemovalPolicy.RETAIN) === RemovalPolicy.RETAIN;

    this.userPool = new cognito.UserPool(this, 'UserPool', {
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

    this.refreshTokenValidity = props.refreshTokenValidity ?? Duration.hours(12);
    // Display names come from `name` and `preferred_username` (lambda/core/profiles.ts): only administrators may set
    // them, or anyone could take another's name with UpdateUserAttributes. Users may write their email (sign-up).
    const writeAttributes = new cognito.ClientAttributes().withStandardAttributes({ email: true });
    this.webClient = this.userPool.addClient('WebClient', {
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
    this.sessionClient = this.userPool.addClient('SessionClient', {
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
      userPoolId: this.userPool.userPoolId,
      groupName: this.adminGroupName,
      description: 'Gatehouse administrators: may join admin:* rooms.',
    });
    for (const tenant of props.tenants ?? []) {
      new cognito.CfnUserPoolGroup(this, `Tenant-${tenant}`, {
        userPoolId: this.userPool.userPoolId,
        groupName: `${this.tenantGroupPrefix}${tenant}`,
        description: `Members of tenant ${tenant}.`,
      });
    }

    if (props.mfa !== cognito.Mfa.REQUIRED) {
      Validations.of(this.userPool).acknowledge({
        id: 'AwsSolutions-COG2',
        reason:
          'MFA is optional by design (users enrol TOTP themselves); deployers who need it set the mfa prop to REQUIRED.',
      });
    }
    if (!threatProtection) {
      for (const id of ['AwsSolutions-COG3', 'AwsSolutions-COG8']) {
        Validations.of(this.userPool).acknowledge({
          id,
          reason:
            'Threat protection needs the Plus feature plan, billed per monthly active user: a cost decision for the deployer, who enables both with the threatProtection prop.',
        });
      }
    }
  }
}
