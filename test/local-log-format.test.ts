import { createLogger } from '../common/log';
import { clock, formatLogLine } from '../local/log-format';

const at = '2026-12-02T19:56:54.817Z';
const local = clock(new Date(at));

describe('function logs as npm start prints them', () => {
  it('prints a JSON log line as time, function, level, event and key fields, the identifying ones first', () => {
    const line = JSON.stringify({ time: at, level: 'info', event: 'connect_allowed', component: 'authorizer', category: 'audit', connectionId: 'QixxfPteb/nf6A==', sourceIp: '127.0.0.1', userId: 'u-1', tenantId: 'acme', source: 'header' });
    expect(formatLogLine('RealtimeAuthorizer1A2B3C4D', line)).toBe(
      `${local} RealtimeAuthorizer   info  connect_allowed  category=audit tenantId=acme userId=u-1 connectionId=QixxfPteb/nf6A== sourceIp=127.0.0.1 source=header`,
    );
  });

  it('never prints a credential, whatever wrote the line, by the rule the functions use', () => {
    const line = JSON.stringify({ time: at, level: 'warn', event: 'x', accessToken: 'eyJraWQ', Authorization: 'Bearer eyJ', cookie: 'gh_session=abc', refreshToken: 'r', ticket: 't', password: 'p', clientSecret: 's', tokenExpiresAt: 1767300000 });
    const out = formatLogLine('RealtimeConnect', line);
    for (const secret of ['eyJ', 'gh_session', '=r ', '=t ', '=p ', '=s ']) expect(out).not.toContain(secret);
    expect(out).toContain('accessToken=[redacted]');
    expect(out).toContain('tokenExpiresAt=1767300000'); // an expiry is not a credential
  });

  it('prints what the real logger writes, errors and nested fields included, shortened and quoted where needed', () => {
    const lines: string[] = [];
    createLogger({ component: 'message' }, { write: (l) => lines.push(l) }).error('post_failed', { room: 'general', error: new Error('socket hang up'), detail: { a: 'x'.repeat(200) }, token: 'secret' });
    const out = formatLogLine('RealtimeMessage0A1B2C3D', lines[0]);
    expect(out).toMatch(/^\d\d:\d\d:\d\d\.\d{3} RealtimeMessage {6}error post_failed {2}room=general error="Error: socket hang up" detail={"a":"x+… token=\[redacted\]$/);
    expect(out.length).toBeLessThan(260);
  });

  it('keeps a message field that is not the event, and passes lines that are not JSON through, stamped', () => {
    expect(formatLogLine('speech', JSON.stringify({ time: at, level: 'error', event: 'provider_failed', message: 'stream reset' }))).toBe(`${local} speech               error provider_failed  message="stream reset"`);
    const now = () => new Date(at);
    expect(formatLogLine('PublishingFanout', 'Error: something odd\n', now)).toBe(`${local} PublishingFanout     Error: something odd\n`);
    expect(formatLogLine('x', '[1,2]', now)).toBe(`${local} x                    [1,2]`);
  });
});
