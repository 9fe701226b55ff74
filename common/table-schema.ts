/**
 * The one table's layout, shared by the infrastructure (lib/connection-table.ts), the Lambdas, the speech service
 * and the local system, so the deployed schema and the code that reads it cannot drift.
 *
 *   connection   pk=conn#<connectionId>   sk=conn      gsiUser=<userId> gsiTenant=<tenantId> gsiExpiry=<minute bucket>
 *   membership   pk=conn#<connectionId>   sk=room#<room>   gsiRoom=<tenantId>#<room>
 *   room counter pk=seq#<tenantId>#<room>  sk=seq     value=<last sequence number>
 *   room history pk=hist#<tenantId>#<room> sk=<seq, 12 digits>   event=<the delivered JSON>
 *   session      pk=sess#<hash of the cookie value>   sk=sess    (cookie sign-in: the user's Cognito tokens)
 *   ticket       pk=tkt#<hash of the ticket>          sk=tkt     (one-time WebSocket ticket, 30 s)
 *   revocation   pk=rev#<sign-in id>                  sk=rev     (a signed-out sign-in, until its tokens expire)
 *   not-before   pk=nbf#<userId>                      sk=nbf     (sign out everywhere: tokens issued before are void)
 *
 * A connection and its memberships share a partition, so disconnect finds everything with one Query; a room's
 * history is one partition read in order; secrets (session ids, tickets) are stored only as hashes.
 */
export const TABLE = {
  partitionKey: 'pk',
  sortKey: 'sk',
  /** Epoch seconds; DynamoDB TTL deletes lazily, so readers also skip items past it. */
  ttlAttribute: 'expiresAt',
  indexes: {
    byUser: { name: 'byUser', partitionKey: 'gsiUser', sortKey: 'connectionId', include: ['signIn'] },
    byTenant: { name: 'byTenant', partitionKey: 'gsiTenant', sortKey: 'connectionId', include: [] },
    byRoom: { name: 'byRoom', partitionKey: 'gsiRoom', sortKey: 'connectionId', include: [] },
    /** Connections by the minute their credential expires: the sweeper reads only what is due. */
    byExpiry: { name: 'byExpiry', partitionKey: 'gsiExpiry', sortKey: 'connectionId', include: ['tokenExpiresAt'] },
  },
} as const;

export const keys = {
  connection: (connectionId: string) => ({ pk: `conn#${connectionId}`, sk: 'conn' }),
  membership: (connectionId: string, room: string) => ({ pk: `conn#${connectionId}`, sk: `room#${room}` }),
  connectionPartition: (connectionId: string) => `conn#${connectionId}`,
  roomPrefix: 'room#',
  room: (tenantId: string, room: string) => `${tenantId}#${room}`,
  counter: (tenantId: string, room: string) => ({ pk: `seq#${tenantId}#${room}`, sk: 'seq' }),
  historyPartition: (tenantId: string, room: string) => `hist#${tenantId}#${room}`,
  historySort: (seq: number) => String(seq).padStart(12, '0'),
  expiryBucket: (epochSeconds: number) => `exp#${Math.floor(epochSeconds / 60)}`,
  session: (hash: string) => ({ pk: `sess#${hash}`, sk: 'sess' }),
  ticket: (hash: string) => ({ pk: `tkt#${hash}`, sk: 'tkt' }),
  revocation: (signIn: string) => ({ pk: `rev#${signIn}`, sk: 'rev' }),
  notBefore: (userId: string) => ({ pk: `nbf#${userId}`, sk: 'nbf' }),
};
