/** How DynamoDB's failures are recognised: by name, once, for every caller. */

/** A write refused because its ConditionExpression was false (the expected, race-losing outcome). */
export function isConditionFailed(err: unknown): boolean {
  return (err as { name?: string } | undefined)?.name === 'ConditionalCheckFailedException';
}
