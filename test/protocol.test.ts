import { parseClientMessage, type ErrorCode } from '../common/protocol';

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
  ])('accepts %s', (raw, expected) => {
    expect(parseClientMessage(raw, limits)).toEqual({ ok: true, message: expected });
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
    ['a reserved namespace', '{"action":"join","room":"tenant:other"}', 'invalid_message'],
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
