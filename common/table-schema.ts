/**
 * The one table's layout, shared by the infrastructure (lib/connection-table.ts), the Lambdas, the speech service
 * and the local system, so the deployed schema and the code that reads it cannot drift.
 *
 *   connection   pk=conn#<connectionId>          sk=conn    rooms=<set of joined rooms>, gsiExpiry=<minute bucket>
 *   room member  pk=room#<tenantId>#<room>[#<shard>]   sk=conn#<connectionId>   credExp=<credential expiry>, userId
 *                (who is in a room: deliveries read this; a big room's members are spread over shards, see
 *                lambda/core/membership-store.ts; the connection item holds `rs#<room>`, its shard there, when not 0)
 *   room shards  pk=room#<tenantId>#<room>       sk=#shards  count=<shards>   (a split room; never expires)
 *   user         pk=user#<userId>                sk=conns   conns=<map connectionId -> expiry>, rlTat  (the per-user cap and rate)
 *   room counter pk=seq#<tenantId>#<room>        sk=seq     value=<last sequence number>, msgs=<messages>   (never expires)
 *   room history pk=hist#<tenantId>#<room>       sk=<seq, 12 digits>   event=<the JSON, as edited>, n, edits, deleted
 *   presence     pk=pres#<tenantId>#<room>       sk=<userId>   conns=<set of the user's connections there>, name, v
 *                (one item per user: a user with two tabs is one presence; `v` orders the user's changes)
 *   read cursor  pk=rcpt#<tenantId>#<room>       sk=<userId>   seq=<read up to>, n=<messages up to there>, name
 *   user's rooms pk=urooms#<tenantId>#<userId>   sk=rooms      rooms=<set of rooms joined> (unread counts)
 *   profile      pk=prof#<userId>                sk=prof       name=<display name> (an hour: spares the user pool)
 *   room access  pk=acl#<tenantId>#<room>        sk=acl     owner, members=<set of user ids> (a private room's member list; never expires)
 *   published    pk=pub#<event id>               sk=pub     seq, messageId, ts of a published event (idempotency)
 *   fan-out      pk=fan#<tenantId>#<room>#<seq>#<shard>   sk=fan   lease, cursor, sent, done (a day: one shard of a
 *                big room's delivery, so a retried shard posts to nobody twice; lambda/core/fanout-store.ts)
 *   session      pk=sess#<hash of the cookie value>   sk=sess    (cookie sign-in: the user's Cognito tokens)
 *   ticket       pk=tkt#<hash of the ticket>          sk=tkt     (one-time WebSocket ticket, 30 s)
 *   revocation   pk=rev#<sign-in id>                  sk=rev     (a signed-out sign-in, until its tokens expire)
 *   not-before   pk=nbf#<userId>                      sk=nbf     (sign out everywhere: tokens issued before are void)
 *
 * Every read a guarantee rests on is a strongly consistent read of the base table: a room's members and a user's
 * connections live in partitions of their own rather than in global secondary indexes, which DynamoDB updates
 * "within a fraction of a second, under normal conditions" but not at once. The one index left, byExpiry, only tells
 * the sweeper where to look; it re-reads each candidate before acting.
 */
export const TABLE = {
  partitionKey: 'pk',
  sortKey: 'sk',
  /** Epoch seconds; DynamoDB TTL deletes lazily, so readers also skip items past it. */
  ttlAttribute: 'expiresAt',
  indexes: {
    /** Connections by the minute their credential expires: the sweeper reads only what is due. */
    byExpiry: { name: 'byExpiry', partitionKey: 'gsiExpiry', sortKey: 'connectionId', include: ['tokenExpiresAt'] },
  },
} as const;

export const keys = {
  connection: (connectionId: string) => ({ pk: `conn#${connectionId}`, sk: 'conn' }),
  connectionPartition: (connectionId: string) => `conn#${connectionId}`,
  roomPartition: (tenantId: string, room: string) => `room#${tenantId}#${room}`,
  /** A shard of a room's members: the room's own partition is shard 0. */
  memberPartition: (tenantId: string, room: string, shard = 0) => `room#${tenantId}#${room}${shard > 0 ? `#${shard}` : ''}`,
  member: (tenantId: string, room: string, connectionId: string, shard = 0) => ({ pk: keys.memberPartition(tenantId, room, shard), sk: `conn#${connectionId}` }),
  /** Marks a split room: its members are spread over `count` shards. Sorted before every member item. */
  shardMarker: (tenantId: string, room: string) => ({ pk: `room#${tenantId}#${room}`, sk: '#shards' }),
  /** The attribute of a connection item that holds its shard in `room` (absent: shard 0). */
  roomShardAttribute: (room: string) => `rs#${room}`,
  user: (userId: string) => ({ pk: `user#${userId}`, sk: 'conns' }),
  counter: (tenantId: string, room: string) => ({ pk: `seq#${tenantId}#${room}`, sk: 'seq' }),
  historyPartition: (tenantId: string, room: string) => `hist#${tenantId}#${room}`,
  historySort: (seq: number) => String(seq).padStart(12, '0'),
  presencePartition: (tenantId: string, room: string) => `pres#${tenantId}#${room}`,
  historyItem: (tenantId: string, room: string, seq: number) => ({ pk: `hist#${tenantId}#${room}`, sk: String(seq).padStart(12, '0') }),
  cursorPartition: (tenantId: string, room: string) => `rcpt#${tenantId}#${room}`,
  cursor: (tenantId: string, room: string, userId: string) => ({ pk: `rcpt#${tenantId}#${room}`, sk: userId }),
  userRooms: (tenantId: string, userId: string) => ({ pk: `urooms#${tenantId}#${userId}`, sk: 'rooms' }),
  profile: (userId: string) => ({ pk: `prof#${userId}`, sk: 'prof' }),
  presence: (tenantId: string, room: string, userId: string) => ({ pk: `pres#${tenantId}#${room}`, sk: userId }),
  roomAccess: (tenantId: string, room: string) => ({ pk: `acl#${tenantId}#${room}`, sk: 'acl' }),
  published: (eventId: string) => ({ pk: `pub#${eventId}`, sk: 'pub' }),
  fanout: (tenantId: string, room: string, seq: number, shard: number) => ({ pk: `fan#${tenantId}#${room}#${seq}#${shard}`, sk: 'fan' }),
  expiryBucket: (epochSeconds: number) => `exp#${Math.floor(epochSeconds / 60)}`,
  session: (hash: string) => ({ pk: `sess#${hash}`, sk: 'sess' }),
  ticket: (hash: string) => ({ pk: `tkt#${hash}`, sk: 'tkt' }),
  revocation: (signIn: string) => ({ pk: `rev#${signIn}`, sk: 'rev' }),
  notBefore: (userId: string) => ({ pk: `nbf#${userId}`, sk: 'nbf' }),
};

/** Indexes of the layout before rooms and users had partitions of their own: unused, kept only while upgrading. */
export const LEGACY_INDEXES = {
  byUser: { partitionKey: 'gsiUser', include: ['signIn'] },
  byTenant: { partitionKey: 'gsiTenant', include: [] },
  byRoom: { partitionKey: 'gsiRoom', include: [] },
} as const;
