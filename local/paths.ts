/** Where Gatehouse's local system finds the repository and the synthesized app. */
import * as path from 'node:path';

export const ROOT = path.join(__dirname, '..');
export const CDK_OUT = path.join(ROOT, 'cdk.out');
/** Seeded user pools, so the app client ids are the same from one start to the next (cognito-local's are random). */
export const COGNITO_SEED_CACHE = path.join(ROOT, 'node_modules', '.cache', 'gatehouse', 'cognito-seeds');
