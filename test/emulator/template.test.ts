import { matches } from '../../local/emulator/eventbridge';
import { Resolver, referencedIds } from '../../local/emulator/template';

describe('local template resolver', () => {
  const resolver = new Resolver(
    { Api: { ref: 'localapi' }, Table: { ref: 'Table', attrs: { Arn: 'arn:aws:dynamodb:eu-west-1:000000000000:table/Table' } } },
    { 'AWS::Region': 'eu-west-1', 'AWS::URLSuffix': 'amazonaws.com' },
  );

  it('resolves the intrinsics CDK emits', () => {
    expect(
      resolver.resolve({
        url: { 'Fn::Join': ['', ['https://', { Ref: 'Api' }, '.execute-api.', { Ref: 'AWS::Region' }, '.', { Ref: 'AWS::URLSuffix' }, '/live']] },
        arn: { 'Fn::GetAtt': ['Table', 'Arn'] },
        sub: { 'Fn::Sub': ['${Api}-${X}-${Table.Arn}', { X: 'x' }] },
        pick: { 'Fn::Select': [1, { 'Fn::Split': ['/', 'a/b/c'] }] },
        plain: ['text', 3],
      }),
    ).toEqual({
      url: 'https://localapi.execute-api.eu-west-1.amazonaws.com/live',
      arn: 'arn:aws:dynamodb:eu-west-1:000000000000:table/Table',
      sub: 'localapi-x-arn:aws:dynamodb:eu-west-1:000000000000:table/Table',
      pick: 'b',
      plain: ['text', 3],
    });
  });

  it('fails loudly on what it cannot resolve', () => {
    expect(() => resolver.resolve({ Ref: 'Missing' })).toThrow('Cannot resolve Ref Missing');
    expect(() => resolver.resolve({ 'Fn::GetAtt': ['Api', 'Nope'] })).toThrow('Fn::GetAtt Api.Nope');
  });

  it('finds the resources a value refers to', () => {
    expect(referencedIds({ 'Fn::Join': ['', ['arn:', { 'Fn::GetAtt': ['Fn1', 'Arn'] }, { Ref: 'X' }]] })).toEqual(['Fn1', 'X']);
  });
});

describe('local EventBridge pattern matching', () => {
  const event = { source: 'jobs', 'detail-type': 'Gatehouse Publish', detail: { tenantId: 'acme', tags: ['a', 'b'] } };
  it.each([
    [{ 'detail-type': ['Gatehouse Publish'] }, true],
    [{ 'detail-type': ['Other'] }, false],
    [{ source: ['jobs', 'billing'], detail: { tenantId: ['acme'] } }, true],
    [{ detail: { tenantId: ['globex'] } }, false],
    [{ detail: { tags: ['b'] } }, true],
    [{ detail: { missing: ['x'] } }, false],
  ])('%j matches: %s', (pattern, expected) => {
    expect(matches(pattern, event)).toBe(expected);
  });
});
