import { createLogger } from '../common/log';
import { clock, createLogPrinter, maskCredentials } from '../local/log-format';

const at = '2026-12-02T19:56:54.817Z';
const local = clock(new Date(at));
const now = () => new Date(at);
/** A JWT's shape (header.payload.signature), as the authorizer receives one. */
const JWT = 'eyJraWQiOiJDb2duaXRvTG9jYWwiLCJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ1LTEifQ.c2lnbmF0dXJl';

/** What the connect function's logger writes (lambda/core/connection.ts), through the real logger. */
function connectLine(fields: Record<string, unknown>): string {
  const lines: string[] = [];
  createLogger({ component: 'connect' }, { write: (l) => lines.push(l) }).info('connected', fields);
  return lines[0].replace(/"time":"[^"]+"/, `"time":"${at}"`);
}

describe('function logs as npm start prints them', () => {
  it('prints a JSON log line as time, function (its component), level, event and key fields, the identifying ones first', () => {
    const print = createLogPrinter();
    const line = JSON.stringify({ time: at, level: 'info', event: 'connect_allowed', component: 'authorizer', category: 'audit', connectionId: 'QixxfPteb/nf6A==', sourceIp: '127.0.0.1', userId: 'u-1', tenantId: 'acme', source: 'header' });
    expect(print('RealtimeAuthorizer74F9F06D', line)).toBe(
      `${local} authorizer  info  connect_allowed  tenantId=acme userId=u-1 connectionId=QixxfPteb/nf6A== category=audit sourceIp=127.0.0.1 source=header`,
    );
  });

  it('prints a metrics line (embedded metric format) as `metrics` and its values, at its timestamp; --json keeps it as CloudWatch gets it', () => {
    const lines: string[] = [];
    createLogger({ component: 'message' }, { write: (l) => lines.push(l), metricsNamespace: 'Gatehouse/Test' }).metrics({ Deliveries: 3, ConnectionsGone: 0 });
    const line = lines[0].replace(/"Timestamp":\d+/, `"Timestamp":${Date.parse(at)}`);
    expect(createLogPrinter()('RealtimeMessageA8211083', line)).toBe(`${local} message     info  metrics  Deliveries=3 ConnectionsGone=0`);
    expect(createLogPrinter({ json: true })('RealtimeMessageA8211083', line)).toBe(line);
    expect(JSON.parse(line)).toEqual({
      _aws: { Timestamp: Date.parse(at), CloudWatchMetrics: [{ Namespace: 'Gatehouse/Test', Dimensions: [['Component'], []], Metrics: [{ Name: 'Deliveries', Unit: 'Count' }, { Name: 'ConnectionsGone', Unit: 'Count' }] }] },
      Component: 'message',
      Deliveries: 3,
      ConnectionsGone: 0,
    });
  });

  it('writes no metrics line without a namespace (tests, a runtime not configured for metrics)', () => {
    const lines: string[] = [];
    createLogger({ component: 'message' }, { write: (l) => lines.push(l) }).metrics({ Deliveries: 3 });
    expect(lines).toEqual([]);
  });

  it('names a function by its logical id without the hash until it has logged its component, then by that, plain lines too', () => {
    const print = createLogPrinter({ now });
    expect(print('RealtimeConnectB0ACF594', 'cold start')).toBe(`${local} RealtimeConnect cold start`);
    expect(print('RealtimeConnectB0ACF594', connectLine({ connectionId: 'c-1', userId: 'u-1', tenantId: 'acme' }))).toBe(`${local} connect     info  connected  tenantId=acme userId=u-1 connectionId=c-1`);
    expect(print('RealtimeConnectB0ACF594', 'Error: something odd')).toBe(`${local} connect     Error: something odd`);
    // Another function's lines keep their own name.
    expect(print('RealtimeMessageA8211083', 'hello')).toBe(`${local} RealtimeMessage hello`);
  });

  it('never prints a credential field, at any depth, by the rule the functions use', () => {
    const print = createLogPrinter();
    const line = JSON.stringify({
      time: at,
      level: 'warn',
      event: 'x',
      accessToken: JWT,
      Authorization: 'Bearer abc',
      cookie: 'gh_session=abc',
      refreshToken: 'r-secret',
      ticket: 't-secret',
      password: 'p-secret',
      detail: { clientSecret: 's-secret', headers: [{ 'set-cookie': '__Host-gh=c-secret' }] },
      tokenExpiresAt: 1767300000,
    });
    const out = print('RealtimeConnect', line);
    for (const secret of ['eyJ', 'abc', 'secret']) expect(out).not.toContain(secret);
    expect(out).toContain('accessToken=[redacted]');
    expect(out).toContain('detail={"clientSecret":"[redacted]","headers":[{"set-cookie":"[redacted]"}]}');
    expect(out).toContain('tokenExpiresAt=1767300000'); // an expiry is not a credential
  });

  it('masks what looks like a credential in any text: a JWT, a Bearer value, a named secret in a URL or an object dump', () => {
    expect(maskCredentials(`verify failed for ${JWT} at 12:00`)).toBe('verify failed for [redacted] at 12:00');
    expect(maskCredentials('{ authorization: "Bearer abc.def", room: "general" }')).toBe('{ authorization: "[redacted]", room: "general" }');
    expect(maskCredentials("headers: { Authorization: 'Basic dXNlcjpwYXNz', cookie: 'a=b; c=d' }")).toBe("headers: { Authorization: '[redacted]', cookie: '[redacted]' }");
    expect(maskCredentials('GET /live?ticket=t-123&tenant=acme')).toBe('GET /live?ticket=[redacted]&tenant=acme');
    expect(maskCredentials('{"password":"hunter two","email":"a@b.test"}')).toBe('{"password":"[redacted]","email":"a@b.test"}');
    expect(maskCredentials('tokenExpiresAt=1767300000 sourceIp=127.0.0.1')).toBe('tokenExpiresAt=1767300000 sourceIp=127.0.0.1');
    // A plain line from a function (console.log of its event) goes through the same mask.
    expect(createLogPrinter({ now })('RealtimeMessage', `{ headers: { Authorization: 'Bearer ${JWT}' } }`)).toBe(`${local} RealtimeMessage { headers: { Authorization: '[redacted]' } }`);
  });

  it('prints what the real logger writes, errors and nested fields included, shortened and quoted where needed', () => {
    const lines: string[] = [];
    createLogger({ component: 'message' }, { write: (l) => lines.push(l) }).error('post_failed', { room: 'general', error: new Error('socket hang up'), detail: { a: 'x'.repeat(200) }, token: 'secret' });
    const out = createLogPrinter()('RealtimeMessageA8211083', lines[0]);
    expect(out).toMatch(/^\d\d:\d\d:\d\d\.\d{3} message {5}error post_failed {2}room=general error="Error: socket hang up" detail={"a":"x+… token=\[redacted\]$/);
    expect(out.length).toBeLessThan(200);
  });

  it('keeps a message field that is not the event, and passes lines that are not JSON objects through, stamped', () => {
    const print = createLogPrinter({ now });
    expect(print('speech', JSON.stringify({ time: at, level: 'error', event: 'provider_failed', component: 'speech', message: 'stream reset' }))).toBe(`${local} speech      error provider_failed  message="stream reset"`);
    expect(print('PublishingFanout0D42FB65', '[1,2]')).toBe(`${local} PublishingFanout [1,2]`);
  });

  it('with --json prints JSON lines byte for byte, re-serialized only when a credential had to go', () => {
    const print = createLogPrinter({ json: true, now });
    const line = connectLine({ connectionId: 'c-1', userId: 'u-1', tenantId: 'acme', token: 'secret' });
    expect(line).toContain('"token":"[redacted]"'); // the logger's own redaction
    expect(print('RealtimeConnectB0ACF594', line)).toBe(line);
    const leaky = JSON.stringify({ time: at, level: 'info', event: 'x', component: 'connect', detail: { password: 'p-secret' } });
    expect(JSON.parse(print('RealtimeConnectB0ACF594', leaky))).toEqual({ time: at, level: 'info', event: 'x', component: 'connect', detail: { password: '[redacted]' } });
    expect(print('RealtimeConnectB0ACF594', 'not json')).toBe(`${local} connect     not json`);
  });
});
