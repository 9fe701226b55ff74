/** Where Gatehouse's local system finds the repository and the synthesized app. */
import * as path from 'node:path';

export const ROOT = path.join(__dirname, '..');
export const CDK_OUT = path.join(ROOT, 'cdk.out');
