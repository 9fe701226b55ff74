/**
 * CPU per @connections POST: what one delivery costs the fan-out function, with the AWS SDK's
 * ApiGatewayManagementApiClient (PostToConnectionCommand) against Gatehouse's lean client
 * (lambda/core/connections-api.ts), both signing with SigV4 over keep-alive connections to the same endpoint.
 */
import { Agent } from 'node:http';
import { ApiGatewayManagementApiClient, PostToConnectionCommand } from '@aws-sdk/client-apigatewaymanagementapi';
import { NodeHttpHandler } from '@smithy/node-http-handler';
import { createConnectionsApi } from '../lambda/core/connections-api';
import { startEndpoint } from './engines';
import { median, num, ratio, type Bench } from './report';

const CREDENTIALS = { accessKeyId: 'AKIDBENCH', secretAccessKey: 'bench-secret', sessionToken: 'bench-session-token' };
/** A message as the fan-out posts it: a chat line with its envelope. */
const PAYLOAD = JSON.stringify({ type: 'message', room: 'general', seq: 4711, messageId: '6f1d2c8e-3b7a-4d5e-9f10-112233445566', sender: { userId: 'u-1', name: 'Alice' }, ts: 1796613984000, data: { text: 'hello, room' } });
const CONCURRENCY = 32;

/** Microseconds of this process's CPU (user + system) per post, `count` posts `CONCURRENCY` at a time. */
async function cpuPerPost(post: (id: string) => Promise<unknown>, count: number): Promise<{ cpuUs: number; wallMs: number }> {
  let next = 0;
  const start = process.cpuUsage();
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: CONCURRENCY }, async () => {
      while (next < count) await post(`conn${next++}AbCdEf==`);
    }),
  );
  const used = process.cpuUsage(start);
  return { cpuUs: (used.user + used.system) / count, wallMs: performance.now() - t0 };
}

export const postsBench: Bench = async ({ full, log }) => {
  const count = full ? 20_000 : 5_000;
  const rounds = full ? 7 : 5;
  const endpoint = await startEndpoint();
  const agent = new Agent({ keepAlive: true, maxSockets: 64 });
  const sdk = new ApiGatewayManagementApiClient({ endpoint: endpoint.url, region: 'eu-west-1', credentials: CREDENTIALS, requestHandler: new NodeHttpHandler({ httpAgent: agent }) });
  const lean = createConnectionsApi({ endpoint: endpoint.url, region: 'eu-west-1', credentials: () => CREDENTIALS, maxSockets: 64 });
  const data = new TextEncoder();
  const ways: Array<[string, (id: string) => Promise<unknown>]> = [
    ['AWS SDK `PostToConnectionCommand` (keep-alive agent, 64 sockets)', (id) => sdk.send(new PostToConnectionCommand({ ConnectionId: id, Data: data.encode(PAYLOAD) }))],
    ['Gatehouse `createConnectionsApi().post` (keep-alive agent, 64 sockets)', (id) => lean.post(id, PAYLOAD)],
  ];
  try {
    // Warm-up: JIT, connections, the signing key's cache.
    for (const [, post] of ways) await cpuPerPost(post, 2_000);
    const cpu: number[][] = ways.map(() => []);
    const wall: number[][] = ways.map(() => []);
    for (let r = 0; r < rounds; r++) {
      // Interleaved, so drift on the shared machine weighs on both alike.
      for (const [i, [name, post]] of ways.entries()) {
        const { cpuUs, wallMs } = await cpuPerPost(post, count);
        cpu[i].push(cpuUs);
        wall[i].push(wallMs);
        log(`round ${r + 1}: ${name.split(' ')[0]} ${num(cpuUs)} µs CPU per post`);
      }
    }
    const [sdkCpu, leanCpu] = cpu.map(median);
    const [sdkWall, leanWall] = wall.map(median);
    const rows = ways.map(([name], i) => [name, num(median(cpu[i])), num((count / median(wall[i])) * 1000, 0), ratio(sdkCpu, median(cpu[i]))]);
    return {
      id: 'posts',
      title: 'CPU per @connections POST',
      method: `${num(count, 0)} POSTs of a ${PAYLOAD.length}-byte message to distinct connection ids, ${CONCURRENCY} in flight, each way, in ${rounds} interleaved rounds after a warm-up; the figure is this process's CPU time (user + system, \`process.cpuUsage\`) divided by the posts, median of the rounds. Both sign with SigV4 (session credentials) and reuse connections through a keep-alive agent; the endpoint answers 200 from a process of its own, so only the client's work is counted. What a POST costs in a 512 MB Lambda, which has about a third of a vCPU, is this CPU time about three times over.`,
      head: ['client', 'CPU µs per post', 'posts / s (wall)', 'CPU vs the SDK'],
      rows,
      headline: `${num(leanCpu)} µs of CPU per post with the lean client vs ${num(sdkCpu)} µs with the AWS SDK (${ratio(sdkCpu, leanCpu)} less; target 4×: ${sdkCpu / leanCpu >= 4 ? 'met' : 'not met'})`,
      notes: [
        `Wall-clock rates (${num((count / leanWall) * 1000, 0)} vs ${num((count / sdkWall) * 1000, 0)} posts/s) are bounded by the loopback endpoint and the one client thread; in Lambda the posts wait on API Gateway, and CPU is what limits how many one invocation can make.`,
        'The lean client sends the request the SDK sends (method, path, body, content type, signed headers and signature: `test/connections-api.test.ts` signs the same request both ways), so API Gateway sees no difference.',
      ],
    };
  } finally {
    sdk.destroy();
    agent.destroy();
    endpoint.stop();
  }
};
