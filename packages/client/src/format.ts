/**
 * Pure text helpers shared by the web app and the CLI, so both say the same thing the same way.
 */
import type { Member } from '../../../protocol';

const nameOf = (u: Member) => u.name || 'Someone';

/** This user first, marked "(you)", then everyone else by name: a list that does not jump around as people come and go. */
export function presenceNames(users: Member[], me: string | undefined): string[] {
  const mine = users.filter((u) => u.userId === me).map((u) => `${nameOf(u)} (you)`);
  const others = users
    .filter((u) => u.userId !== me)
    .map(nameOf)
    .sort((a, b) => a.localeCompare(b));
  return [...mine, ...others];
}

/** "Bob is typing…", "Bob and Carol are typing…", "Bob, Carol and Dan are typing…", "Bob, Carol and 3 others are typing…". */
export function typingLine(users: Member[]): string {
  const names = users.map(nameOf);
  if (names.length === 0) return '';
  if (names.length === 1) return `${names[0]} is typing…`;
  if (names.length === 2) return `${names[0]} and ${names[1]} are typing…`;
  if (names.length === 3) return `${names[0]}, ${names[1]} and ${names[2]} are typing…`;
  return `${names[0]}, ${names[1]} and ${names.length - 2} others are typing…`;
}

/** "Seen by Bob", "Seen by Bob and Carol", "Seen by Bob, Carol and Dan", "Seen by 4"; '' when nobody has. */
export function seenByLine(members: Member[]): string {
  const names = members.map(nameOf).sort((a, b) => a.localeCompare(b));
  if (names.length === 0) return '';
  if (names.length > 3) return `Seen by ${names.length}`;
  if (names.length === 1) return `Seen by ${names[0]}`;
  return `Seen by ${names.slice(0, -1).join(', ')} and ${names[names.length - 1]}`;
}

/** A refused edit or deletion, as a sentence (`err` is what the client rejected with). */
export function changeError(action: 'edit' | 'delete', err: unknown): string {
  const code = (err as { code?: unknown } | null)?.code;
  if (code === 'forbidden') return action === 'edit' ? 'You can only edit your own messages.' : 'You can only delete your own messages.';
  if (code === 'not_found') return 'That message does not exist (or was deleted).';
  const message = err instanceof Error ? err.message : String(err);
  return `Could not ${action} the message: ${message}`;
}
