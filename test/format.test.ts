import { changeError, presenceNames, seenByLine, typingLine } from '@gatehouse/client';

const m = (userId: string, name: string) => ({ userId, name });
const [alice, bob, carol, dan, erin] = [m('a', 'Alice'), m('b', 'Bob'), m('c', 'Carol'), m('d', 'Dan'), m('e', 'Erin')];

describe('presenceNames', () => {
  it('puts this user first, marked, then the others by name', () => {
    expect(presenceNames([carol, bob, alice], 'c')).toEqual(['Carol (you)', 'Alice', 'Bob']);
    expect(presenceNames([carol, bob], undefined)).toEqual(['Bob', 'Carol']);
    expect(presenceNames([], 'a')).toEqual([]);
    expect(presenceNames([m('x', '')], 'a')).toEqual(['Someone']);
  });
});

describe('typingLine', () => {
  it('names one, two and three typers, and counts the rest', () => {
    expect(typingLine([])).toBe('');
    expect(typingLine([bob])).toBe('Bob is typing…');
    expect(typingLine([bob, carol])).toBe('Bob and Carol are typing…');
    expect(typingLine([bob, carol, dan])).toBe('Bob, Carol and Dan are typing…');
    expect(typingLine([bob, carol, dan, erin])).toBe('Bob, Carol and 2 others are typing…');
  });
});

describe('seenByLine', () => {
  it('names up to three readers, and counts more', () => {
    expect(seenByLine([])).toBe('');
    expect(seenByLine([bob])).toBe('Seen by Bob');
    expect(seenByLine([carol, bob])).toBe('Seen by Bob and Carol');
    expect(seenByLine([dan, bob, carol])).toBe('Seen by Bob, Carol and Dan');
    expect(seenByLine([alice, bob, carol, dan])).toBe('Seen by 4');
  });
});

describe('changeError', () => {
  it('says why an edit or deletion was refused', () => {
    expect(changeError('edit', { code: 'forbidden' })).toBe('You can only edit your own messages.');
    expect(changeError('delete', { code: 'forbidden' })).toBe('You can only delete your own messages.');
    expect(changeError('edit', { code: 'not_found' })).toBe('That message does not exist (or was deleted).');
    expect(changeError('delete', new Error('timed out'))).toBe('Could not delete the message: timed out');
  });
});
