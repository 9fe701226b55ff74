/** Where Gatehouse's local system finds the repository and the synthesized app. */
import * as path from 'node:path';

export const ROOT = path.join(__dirname, '..');
/** The cloud assembly the local system synthesizes and runs: `GATEHOUSE_CDK_OUT`, or the repository's cdk.out. */
export const CDK_OUT = process.env.GATEHOUSE_CDK_OUT ? path.resolve(process.env.GATEHOUSE_CDK_OUT) : path.join(ROOT, 'cdk.out');
/** Seeded user pools, copied by later starts instead of seeding again. */
export const COGNITO_SEED_CACHE = path.join(ROOT, 'node_modules', '.cache', 'gatehouse', 'cognito-seeds');
