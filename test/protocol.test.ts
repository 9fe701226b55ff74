import { CLOSE, SPEECH_CLOSE, parseClientMessage, shouldReconnect, tenantsOfGroups, type ErrorCode } from '../protocol';
import { resolveTenant } from '../common/token';

const limits = { maxFrameBytes: 1024, maxDataBytes: 100 };

function rejected(raw: string): { code: ErrorCode; id?: string } {
  const result = parseClientMessage(raw, limits);
  if (result.ok) throw new Error(`expected rejection of ${raw}`);
  return { code: result.error.code, ...(result.error.id ? { id: result.error.id } : {}) };
}

describe('parseClientMessage', () => {
  it.each([
    ['{"action":"join","room":"general"}', { action: 'join', room: 'general' }],
    ['{"action":"leave","room":"a.b-c_d","id":"r1"}', { action: 'leave', room: 'a.b-c_d', id: 'r1' }],
    ['{"action":"send","room":"general","data":{"text":"hi"}}', { action: 'send', room: 'general', data: { text: 'hi' } }],
    ['{"action":"send","room":"user:1234-abcd","data":null}', { action: 'send', room: 'user:1234-abcd', data: null }],
    ['{"action":"join","room":"general","after":0}', { action: 'join', room: 'general', after: 0 }],
    ['{"action":"join","room":"general","after":42}', { action: 'join', room: 'general', after: 42 }],
    ['{"action":"whoami"}', { action: 'whoami' }],
    ['{"action":"ping","id":"x:1"}', { action: 'ping', id: 'x:1' }],
    ['{"action":"join_rooms","rooms":[{"room":"a"},{"room":"b","after":3}]}', { action: 'join_rooms', rooms: [{ room: 'a' }, { room: 'b', after: 3 }] }],
  ])('accepts %s', (raw, expected) => {
    expect(parseClientMessage(raw, limits)).toEqual({ ok: true, message: expected });
  });

  it.each<[string, unknown]>([
    ['no rooms', []],
    ['eleven rooms', Array.from({ length: 11 }, (_, i) => ({ room: `r${i}` }))],
    ['a room twice', [{ room: 'a' }, { room: 'a', after: 1 }]],
    ['a bad room name', [{ room: 'no spaces' }]],
    ['a negative after', [{ room: 'a', after: -1 }]],
    ['an unknown field', [{ room: 'a', data: 1 }]],
    ['a string instead of an entry', ['a']],
    ['not a list', { room: 'a' }],
  ])('refuses join_rooms with %s', (_name, rooms) => {
    expect(rejected(JSON.stringify({ action: 'join_rooms', rooms, id: 'j' }))).toEqual({ code: 'invalid_message', id: 'j' });
  });

  it.each<[string, string, ErrorCode]>([
    ['not JSON', '{"action":', 'malformed_json'],
    ['an array', '[1,2]', 'invalid_message'],
    ['a string', '"join"', 'invalid_message'],
    ['no action', '{"room":"general"}', 'invalid_message'],
    ['a numeric action', '{"action":7}', 'invalid_message'],
    ['an unknown action', '{"action":"dance"}', 'unknown_action'],
    ['a prototype-ish action', '{"action":"__proto__"}', 'unknown_action'],
    ['a missing room', '{"action":"join"}', 'invalid_message'],
    ['a numeric room', '{"action":"join","room":5}', 'invalid_message'],
    ['an empty room', '{"action":"join","room":""}', 'invalid_message'],
    ['a room with #', '{"action":"join","room":"a#b"}', 'invalid_message'],
    ['a namespace that is not lower-case', '{"action":"join","room":"Tenant:other"}', 'invalid_message'],
    ['a namespace too long', '{"action":"join","room":"abcdefghijklmnopq:x"}', 'invalid_message'],
    ['a room too long', `{"action":"join","room":"${'a'.repeat(65)}"}`, 'invalid_message'],
    ['send without data', '{"action":"send","room":"general"}', 'invalid_message'],
    ['an unexpected field', '{"action":"join","room":"general","tenant":"other"}', 'invalid_message'],
    ['a field of another action', '{"action":"ping","room":"general"}', 'invalid_message'],
    ['a bad id', '{"action":"ping","id":"has space"}', 'invalid_message'],
    ['a negative after', '{"action":"join","room":"g","after":-1}', 'invalid_message'],
    ['a fractional after', '{"action":"join","room":"g","after":1.5}', 'invalid_message'],
    ['a string after', '{"action":"join","room":"g","after":"3"}', 'invalid_message'],
    ['after on another action', '{"action":"leave","room":"g","after":3}', 'invalid_message'],
    ['oversize data', `{"action":"send","room":"g","data":"${'x'.repeat(120)}"}`, 'too_large'],
    ['an oversize frame', `{"action":"ping","pad":"${'x'.repeat(1100)}"}`, 'too_large'],
  ])('refuses %s', (_name, raw, code) => {
    expect(rejected(raw).code).toBe(code);
  });

  it('echoes a well-formed id on errors so the client can correlate them', () => {
    expect(rejected('{"action":"dance","id":"req-7"}')).toEqual({ code: 'unknown_action', id: 'req-7' });
  });

  it('counts bytes, not characters', () => {
    const euro = '€'.repeat(40); // 120 bytes in UTF-8, 40 characters
    expect(rejected(`{"action":"send","room":"g","data":"${euro}"}`).code).toBe('too_large');
  });
});

describe('the close-code catalog', () => {
  it('tells a client whether to come back, by entry and by range', () => {
    expect(Object.values(CLOSE).filter((c) => c.reconnect).map((c) => c.code)).toEqual([1000, 1001, 1011, 1013, 4000, 4001, 4002]);
    for (const c of Object.values(CLOSE)) expect(shouldReconnect(c.code)).toBe(c.reconnect);
    // Dropped networks (no close frame), restarts and unknown codes reconnect; our 4500-4999 never do.
    expect([1005, 1006, 1012, 4100, 4499].map(shouldReconnect)).toEqual([true, true, true, true, true]);
    expect([4500, 4700, 4999].map(shouldReconnect)).toEqual([false, false, false]);
  });

  it('has one code per entry, and the speech socket uses its entries', () => {
    const codes = Object.values(CLOSE).map((c) => c.code);
    expect(new Set(codes).size).toBe(codes.length);
    for (const code of Object.values(SPEECH_CLOSE)) expect(codes).toContain(code);
  });
});

describe('tenantsOfGroups: the one reading of tenant memberships (handshake, session API, web app, CLI)', () => {
  it('lists the ids of tenant groups, in order, and nothing else', () => {
    expect(tenantsOfGroups(['tenant:acme', 'admin', 'runs:7', 'tenant:globex'])).toEqual(['acme', 'globex']);
    expect(tenantsOfGroups(['org/acme', 'tenant:x'], 'org/')).toEqual(['acme']);
    expect(tenantsOfGroups([])).toEqual([]);
  });

  it('leaves out groups the handshake would refuse as a tenant, so nobody offers a tenant that cannot be chosen', () => {
    expect(tenantsOfGroups(['tenant:', 'tenant:a b', 'tenant:../x', `tenant:${'a'.repeat(65)}`, 'tenant:ok', 7, null])).toEqual(['ok']);
    expect(resolveTenant(['tenant:a b', 'tenant:ok'], undefined)).toEqual({ ok: true, tenantId: 'ok' });
  });
});
