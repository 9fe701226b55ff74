import type { Context } from 'aws-lambda';
import { lambdaDispatcher, realtimeRuntime } from './core/clients';
import { runFanoutTask, type FanoutTask } from './core/fanout';

const runtime = realtimeRuntime('fanout');
// The workers hand shards and continuations to themselves: Lambda names the function in its environment.
const self = process.env.AWS_LAMBDA_FUNCTION_NAME;
if (!self) throw new Error('AWS_LAMBDA_FUNCTION_NAME is not set (Lambda sets it).');
const deps = { ...runtime, fanouts: runtime.store.fanouts, dispatch: lambdaDispatcher(self) };

// Invoked asynchronously (by the functions that deliver to rooms, and by itself): a thrown error makes Lambda retry
// the task (twice), then it goes to the failed-invocations queue.
export const handler = async (task: FanoutTask, context: Context) => {
  await runFanoutTask(task, deps, () => context.getRemainingTimeInMillis());
};
