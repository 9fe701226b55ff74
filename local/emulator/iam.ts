/**
 * IAM as the emulator enforces it: every caller of an emulated service endpoint signs its requests (SigV4) with an
 * access key that stands for a principal, and a request is allowed only when that principal's identity-based
 * policies in the synthesized template allow the action on the resource, with no explicit Deny.
 *
 * Principals: each AWS::IAM::Role of the template (the Lambda functions and the speech task run with their role's
 * key), and the operator, the developer at the keyboard with the account's administrator rights (the CLI, tests,
 * benchmarks), whose well-known key is `local`/`local`. Evaluation follows "Policy evaluation logic"
 * (https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_evaluation-logic.html) for one account:
 * an explicit Deny wins, else an Allow is needed, else the request is implicitly denied. Action names match
 * case-insensitively and resources case-sensitively, both with `*` and `?` wildcards; NotAction and NotResource are
 * honoured. A statement with a Condition is not evaluated: an Allow with a condition grants nothing here (stricter
 * than AWS, never looser), a Deny with one is applied unconditionally. AWS-managed policies are known by what they
 * grant for the few the template attaches; any other managed policy grants nothing.
 */
import { createHash, randomBytes } from 'node:crypto';
import { resourcesOfType, referencedIds, type Resolver, type Template } from './template';

export interface Principal {
  /** Logical id of the role, or 'operator'. */
  id: string;
  arn: string;
}

export interface Credentials {
  accessKeyId: string;
  secretAccessKey: string;
}

interface Statement {
  Effect: 'Allow' | 'Deny';
  Action?: string | string[];
  NotAction?: string | string[];
  Resource?: string | string[];
  NotResource?: string | string[];
  Condition?: unknown;
}

/** The operator's key: the account administrator, as a developer's own credentials would be. */
export const OPERATOR_CREDENTIALS: Credentials = { accessKeyId: 'local', secretAccessKey: 'local' };

/** What the AWS-managed policies the template may attach allow (only what the emulated services check). */
const AWS_MANAGED: Record<string, Statement[]> = {
  'service-role/AWSLambdaBasicExecutionRole': [{ Effect: 'Allow', Action: ['logs:CreateLogGroup', 'logs:CreateLogStream', 'logs:PutLogEvents'], Resource: '*' }],
  'service-role/AmazonAPIGatewayPushToCloudWatchLogs': [{ Effect: 'Allow', Action: ['logs:*'], Resource: '*' }],
  'service-role/AmazonECSTaskExecutionRolePolicy': [{ Effect: 'Allow', Action: ['ecr:*', 'logs:CreateLogStream', 'logs:PutLogEvents'], Resource: '*' }],
};

const list = (value: string | string[] | undefined): string[] => (value === undefined ? [] : Array.isArray(value) ? value : [value]);

const compiled = new Map<string, RegExp>();

/** IAM's wildcard match: `*` any run of characters, `?` one character. */
export function wildcard(pattern: string, value: string, caseInsensitive = false): boolean {
  const cacheKey = `${caseInsensitive ? 'i' : 's'}${pattern}`;
  let regex = compiled.get(cacheKey);
  if (!regex) {
    const source = pattern
      .split('')
      .map((c) => (c === '*' ? '.*' : c === '?' ? '.' : c.replace(/[.+^${}()|[\]\\]/g, '\\$&')))
      .join('');
    compiled.set(cacheKey, (regex = new RegExp(`^${source}$`, caseInsensitive ? 'is' : 's')));
  }
  return regex.test(value);
}

function applies(statement: Statement, action: string, resource: string): boolean {
  const actionMatches = statement.NotAction
    ? !list(statement.NotAction).some((a) => wildcard(a, action, true))
    : list(statement.Action).some((a) => wildcard(a, action, true));
  const resourceMatches = statement.NotResource
    ? !list(statement.NotResource).some((r) => wildcard(r, resource))
    : list(statement.Resource).some((r) => wildcard(r, resource));
  return actionMatches && resourceMatches;
}

export type Decision = { allowed: true } | { allowed: false; explicit: boolean };

/** Evaluates one request against a principal's statements (explicit Deny, then Allow, else implicit deny). */
export function evaluate(statements: readonly Statement[], action: string, resource: string): Decision {
  const matching = statements.filter((s) => applies(s, action, resource));
  if (matching.some((s) => s.Effect === 'Deny')) return { allowed: false, explicit: true };
  if (matching.some((s) => s.Effect === 'Allow' && s.Condition === undefined)) return { allowed: true };
  return { allowed: false, explicit: false };
}

export interface IamOptions {
  template: Template;
  resolver: Resolver;
  accountId: string;
}

export class Iam {
  private readonly secrets = new Map<string, { secret: string; principal: Principal }>();
  private readonly keys = new Map<string, Credentials>();
  private readonly statements = new Map<string, Statement[]>();

  constructor(options: IamOptions) {
    const { template, resolver } = options;
    this.secrets.set(OPERATOR_CREDENTIALS.accessKeyId, {
      secret: OPERATOR_CREDENTIALS.secretAccessKey,
      principal: { id: 'operator', arn: `arn:aws:iam::${options.accountId}:user/operator` },
    });
    // A statement naming something the emulator cannot resolve grants nothing, and denies everything it names an
    // action of (stricter either way than reading it as something it is not).
    const resolved = (statements: Statement[] = []): Statement[] =>
      statements.map((s) => {
        try {
          return resolver.resolve(s) as Statement;
        } catch {
          return s.Effect === 'Deny' ? { ...s, Resource: '*', NotResource: undefined } : { ...s, Resource: [], NotResource: undefined };
        }
      });
    for (const [roleId, role] of resourcesOfType(template, 'AWS::IAM::Role')) {
      const statements: Statement[] = [];
      for (const policy of (role.Properties?.Policies ?? []) as Array<{ PolicyDocument: { Statement: Statement[] } }>) {
        statements.push(...resolved(policy.PolicyDocument.Statement));
      }
      for (const arn of (role.Properties?.ManagedPolicyArns ?? []) as unknown[]) {
        const name = /:iam::aws:policy\/(.+)$/.exec(flatten(arn))?.[1];
        statements.push(...(name ? (AWS_MANAGED[name] ?? []) : []));
      }
      this.statements.set(roleId, statements);
      // A fixed-length key id derived from the role, and a random secret per emulator run.
      const accessKeyId = `ASIA${createHash('sha256').update(roleId).digest('hex').slice(0, 16).toUpperCase()}`;
      const secretAccessKey = randomBytes(30).toString('base64');
      this.keys.set(roleId, { accessKeyId, secretAccessKey });
      this.secrets.set(accessKeyId, { secret: secretAccessKey, principal: { id: roleId, arn: `arn:aws:iam::${options.accountId}:role/${roleId}` } });
    }
    for (const type of ['AWS::IAM::Policy', 'AWS::IAM::ManagedPolicy']) {
      for (const [, policy] of resourcesOfType(template, type)) {
        const statements = resolved(policy.Properties?.PolicyDocument?.Statement);
        for (const roleId of referencedIds(policy.Properties?.Roles)) this.statements.get(roleId)?.push(...statements);
      }
    }
  }

  /** The access key a role's code runs with (a function's environment, the speech task's clients). */
  credentialsOf(roleId: string): Credentials {
    const credentials = this.keys.get(roleId);
    if (!credentials) throw new Error(`No IAM role ${roleId} in the template`);
    return credentials;
  }

  secretOf = (accessKeyId: string): string | undefined => this.secrets.get(accessKeyId)?.secret;

  principalOf(accessKeyId: string): Principal | undefined {
    return this.secrets.get(accessKeyId)?.principal;
  }

  /** Whether the principal behind `accessKeyId` may perform `action` on `resource`. */
  authorize(accessKeyId: string, action: string, resource: string): Decision & { principal?: Principal } {
    const entry = this.secrets.get(accessKeyId);
    if (!entry) return { allowed: false, explicit: false };
    if (entry.principal.id === 'operator') return { allowed: true, principal: entry.principal };
    return { ...evaluate(this.statements.get(entry.principal.id) ?? [], action, resource), principal: entry.principal };
  }

  /** AWS's wording for an implicit or explicit denial. */
  denialMessage(principal: Principal | undefined, action: string, resource: string, explicit: boolean): string {
    const who = principal ? principal.arn.replace(':role/', ':assumed-role/') : 'anonymous';
    return `User: ${who} is not authorized to perform: ${action} on resource: ${resource} because ${explicit ? 'an explicit deny in an identity-based policy' : 'no identity-based policy allows the'} ${explicit ? '' : `${action} action`}`.trim();
  }
}

function flatten(value: unknown): string {
  if (typeof value === 'string') return value;
  if (value && typeof value === 'object' && 'Fn::Join' in value) {
    const [sep, parts] = (value as { 'Fn::Join': [string, unknown[]] })['Fn::Join'];
    return parts.map((p) => (typeof p === 'string' ? p : '')).join(sep);
  }
  return '';
}
