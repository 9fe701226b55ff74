/**
 * The template's SQS queues, as far as the emulator needs them: the places where AWS services put what failed
 * (EventBridge dead-letter queues, Lambda on-failure destinations), so that tests can see a failure land where it
 * lands in AWS. Messages are kept in memory, in order, with the attributes the sending service attaches.
 */
import { randomUUID } from 'node:crypto';
import { resourcesOfType, type Template } from './template';

export interface QueuedMessage {
  messageId: string;
  body: string;
  attributes: Record<string, string>;
  sentAt: number;
}

export class LocalQueues {
  private readonly queues = new Map<string, QueuedMessage[]>();
  private readonly byArn = new Map<string, string>();

  constructor(template: Template, arnOf: (logicalId: string) => string) {
    for (const [id] of resourcesOfType(template, 'AWS::SQS::Queue')) {
      this.queues.set(id, []);
      this.byArn.set(arnOf(id), id);
    }
  }

  /** The queue's logical id for an ARN, or undefined when the template has no such queue. */
  idOf(arn: string): string | undefined {
    return this.byArn.get(arn);
  }

  send(arn: string, body: string, attributes: Record<string, string> = {}): boolean {
    const id = this.byArn.get(arn);
    if (!id) return false;
    this.queues.get(id)!.push({ messageId: randomUUID(), body, attributes, sentAt: Date.now() });
    return true;
  }

  /** The messages in a queue (by logical id), oldest first. */
  messages(logicalId: string): readonly QueuedMessage[] {
    const queue = this.queues.get(logicalId);
    if (!queue) throw new Error(`No queue ${logicalId} in the template`);
    return queue;
  }
}
