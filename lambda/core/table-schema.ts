/**
 * The connection table's layout, shared by the infrastructure (lib/connection-table.ts), the store and the local
 * system, so the deployed schema and the code that reads it cannot drift.
 *
 * One table, generic keys:
 *   connection   pk=conn#<connectionId>  sk=conn             gsiUser=<userId>  gsiTenant=<tenantId>
 *   membership   pk=conn#<connectionId>  sk=room#<room>      gsiRoom=<tenantId>#<room>
 *   room counter pk=seq#<tenantId>#<room> sk=seq              value=<last sequence number>
 *   room history pk=hist#<tenantId>#<room> sk=<seq, 12 digits> event=<the delivered JSON>
 * A connection and its memberships share a partition, so disconnect finds everything with one Query; a room's
 * history is one partition read in order from any sequence number. Later item types (revocations, tickets) get
 * their own key prefixes in the same table.
 */
export const TABLE = {
  partitionKey: 'pk',
  sortKey: 'sk',
  /** Epoch seconds; DynamoDB TTL deletes lazily, so readers also skip items past it. */
  ttlAttribute: 'expiresAt',
  indexes: {
    byUser: { name: 'byUser', partitionKey: 'gsiUser', sortKey: 'connectionId' },
    byTenant: { name: 'byTenant', partitionKey: 'gsiTenant', sortKey: 'connectionId' },
    byRoom: { name: 'byRoom', partitionKey: 'gsiRoom', sortKey: 'connectionId' },
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
};
