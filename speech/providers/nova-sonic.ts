/**
 * Amazon Nova Sonic on Bedrock, over InvokeModelWithBidirectionalStream.
 *
 * Input order (documented): sessionStart, promptStart, the SYSTEM text block, optional history blocks (USER and
 * ASSISTANT, non-interactive), then one AUDIO content block that stays open for the whole stream. Closing order,
 * also on errors: contentEnd (audio), promptEnd, sessionEnd.
 *
 * A stream ends after 8 minutes, so a conversation is handed over to a new stream before that: at the first turn
 * boundary after `renewAfterMs` (or, if the user stays silent, at a hard deadline), a new stream is opened with the
 * trimmed transcript as history and the user audio buffered since the boundary, then the old one is closed.
 */
import { randomUUID } from 'node:crypto';
import {
  BedrockRuntimeClient,
  InvokeModelWithBidirectionalStreamCommand,
  type InvokeModelWithBidirectionalStreamInput,
  type InvokeModelWithBidirectionalStreamOutput,
} from '@aws-sdk/client-bedrock-runtime';
import type { Logger } from '../../common/log';
import { SPEECH_INPUT_SAMPLE_RATE, SPEECH_OUTPUT_SAMPLE_RATE } from '../../protocol';
import type { ProviderEvents, ProviderSession, SpeechProvider } from '../provider';

export interface NovaSonicOptions {
  client: BedrockRuntimeClient;
  modelId: string;
  voiceId: string;
  systemPrompt: string;
  inference?: { maxTokens: number; topP: number; temperature: number };
  /** How quickly a pause ends the user's turn. @default 'MEDIUM' */
  endpointing?: 'HIGH' | 'MEDIUM' | 'LOW';
  /** Answers the model's knowledge-base tool (Bedrock Knowledge Bases Retrieve), when one is configured. */
  retrieve?: (query: string) => Promise<string>;
  /** Hand over to a new stream at the first turn boundary after this long. @default 7 minutes */
  renewAfterMs?: number;
  /** ...or at this point even without a turn boundary (a silent user). @default 7.5 minutes */
  renewDeadlineMs?: number;
}

type Json = Record<string, unknown>;
type Role = 'USER' | 'ASSISTANT';

const TEXT_CHUNK = 1000; // a textInput carries at most 1 KB
const HISTORY_LIMIT = 40_000; // all history at most 40 KB
const AUDIO_REPLAY_MS = 3000; // user audio carried over to the next stream
export const KNOWLEDGE_TOOL = 'search_knowledge_base';

/** A push-based async iterable: the stream's request body. */
class Outbox implements AsyncIterable<InvokeModelWithBidirectionalStreamInput> {
  private readonly items: Json[] = [];
  private waiting?: () => void;
  private done = false;
  private readonly encoder = new TextEncoder();

  push(event: Json): void {
    if (this.done) return;
    this.items.push(event);
    this.waiting?.();
  }

  end(): void {
    this.done = true;
    this.waiting?.();
  }

  async *[Symbol.asyncIterator](): AsyncIterator<InvokeModelWithBidirectionalStreamInput> {
    for (;;) {
      const next = this.items.shift();
      if (next) {
        yield { chunk: { bytes: this.encoder.encode(JSON.stringify(next)) } };
        continue;
      }
      if (this.done) return;
      await new Promise<void>((resolve) => (this.waiting = resolve));
      this.waiting = undefined;
    }
  }
}

/** Consecutive turns of one role merged, oldest dropped to fit, starting with USER (as the model requires). */
export function trimHistory(turns: Array<{ role: Role; text: string }>, limit = HISTORY_LIMIT): Array<{ role: Role; text: string }> {
  const merged: Array<{ role: Role; text: string }> = [];
  for (const t of turns) {
    const last = merged[merged.length - 1];
    if (last && last.role === t.role) last.text = `${last.text} ${t.text}`;
    else merged.push({ ...t });
  }
  let size = merged.reduce((n, t) => n + Buffer.byteLength(t.text), 0);
  while (merged.length > 0 && (size > limit || merged[0].role !== 'USER')) {
    size -= Buffer.byteLength(merged.shift()!.text);
  }
  return merged;
}

/** One Bedrock stream: its input queue, its output loop, and what is needed to close it in order. */
class Stream {
  readonly promptName = randomUUID();
  readonly audioContent = randomUUID();
  private readonly outbox = new Outbox();
  private closing = false;
  private ended?: Promise<void>;
  private interruptedContent?: string;
  private role?: Role | 'TOOL';
  private stage?: string;
  private toolUse?: { id: string; name: string; content: string };

  constructor(
    private readonly options: NovaSonicOptions,
    private readonly sink: {
      events: ProviderEvents;
      final: (role: Role, text: string) => void;
      turnBoundary: () => void;
      log: Logger;
    },
  ) {}

  private send(event: Json): void {
    this.outbox.push({ event });
  }

  private textBlock(role: 'SYSTEM' | Role, text: string): void {
    const contentName = randomUUID();
    this.send({
      contentStart: {
        promptName: this.promptName,
        contentName,
        type: 'TEXT',
        interactive: false,
        role,
        textInputConfiguration: { mediaType: 'text/plain' },
      },
    });
    for (let i = 0; i < text.length; i += TEXT_CHUNK) {
      this.send({ textInput: { promptName: this.promptName, contentName, content: text.slice(i, i + TEXT_CHUNK) } });
    }
    this.send({ contentEnd: { promptName: this.promptName, contentName } });
  }

  async start(history: Array<{ role: Role; text: string }>): Promise<void> {
    const o = this.options;
    this.send({
      sessionStart: {
        inferenceConfiguration: o.inference ?? { maxTokens: 1024, topP: 0.9, temperature: 0.7 },
        turnDetectionConfiguration: { endpointingSensitivity: o.endpointing ?? 'MEDIUM' },
      },
    });
    this.send({
      promptStart: {
        promptName: this.promptName,
        textOutputConfiguration: { mediaType: 'text/plain' },
        audioOutputConfiguration: {
          mediaType: 'audio/lpcm',
          sampleRateHertz: SPEECH_OUTPUT_SAMPLE_RATE,
          sampleSizeBits: 16,
          channelCount: 1,
          voiceId: o.voiceId,
          encoding: 'base64',
          audioType: 'SPEECH',
        },
        ...(o.retrieve
          ? {
              toolUseOutputConfiguration: { mediaType: 'application/json' },
              toolConfiguration: {
                tools: [
                  {
                    toolSpec: {
                      name: KNOWLEDGE_TOOL,
                      description: 'Search the knowledge base for facts needed to answer the user.',
                      inputSchema: {
                        json: JSON.stringify({
                          type: 'object',
                          properties: { query: { type: 'string', description: 'What to look up' } },
                          required: ['query'],
                        }),
                      },
                    },
                  },
                ],
              },
            }
          : {}),
      },
    });
    this.textBlock('SYSTEM', o.systemPrompt);
    for (const turn of history) this.textBlock(turn.role, turn.text);
    this.send({
      contentStart: {
        promptName: this.promptName,
        contentName: this.audioContent,
        type: 'AUDIO',
        interactive: true,
        role: 'USER',
        audioInputConfiguration: {
          mediaType: 'audio/lpcm',
          sampleRateHertz: SPEECH_INPUT_SAMPLE_RATE,
          sampleSizeBits: 16,
          channelCount: 1,
          audioType: 'SPEECH',
          encoding: 'base64',
        },
      },
    });
    const response = await o.client.send(new InvokeModelWithBidirectionalStreamCommand({ modelId: o.modelId, body: this.outbox }));
    this.ended = this.receive(response.body);
  }

  audio(pcm: Buffer): void {
    if (this.closing) return;
    this.send({ audioInput: { promptName: this.promptName, contentName: this.audioContent, content: pcm.toString('base64') } });
  }

  private async receive(body: AsyncIterable<InvokeModelWithBidirectionalStreamOutput> | undefined): Promise<void> {
    try {
      for await (const part of body ?? []) {
        const bytes = part.chunk?.bytes;
        if (!bytes) {
          // The stream's error members (modelStreamErrorException, throttlingException...) end this stream.
          const [name, detail] = Object.entries(part).find(([, v]) => v !== undefined) ?? ['unknown', {}];
          throw Object.assign(new Error((detail as { message?: string })?.message ?? name), { name });
        }
        if (!this.closing) await this.handle((JSON.parse(new TextDecoder().decode(bytes)) as { event?: Json }).event ?? {});
      }
    } catch (err) {
      if (!this.closing) this.sink.events.error(err as Error);
    }
  }

  private async handle(event: Json): Promise<void> {
    const [type, value] = Object.entries(event)[0] ?? [];
    const e = (value ?? {}) as Record<string, unknown>;
    const { events } = this.sink;
    switch (type) {
      case 'contentStart': {
        this.role = e.role as Role | 'TOOL';
        try {
          this.stage = e.additionalModelFields ? (JSON.parse(String(e.additionalModelFields)) as { generationStage?: string }).generationStage : undefined;
        } catch {
          this.stage = undefined;
        }
        return;
      }
      case 'textOutput': {
        const content = String(e.content ?? '');
        if (/^\s*\{\s*"interrupted"\s*:\s*true\s*\}\s*$/.test(content)) return this.interrupt(String(e.contentId ?? ''));
        if (this.role !== 'USER' && this.role !== 'ASSISTANT') return;
        const final = this.role === 'USER' || this.stage === 'FINAL';
        events.transcript(this.role === 'USER' ? 'user' : 'assistant', content, final);
        if (final) this.sink.final(this.role, content);
        return;
      }
      case 'audioOutput':
        events.audio(Buffer.from(String(e.content ?? ''), 'base64'));
        return;
      case 'toolUse':
        this.toolUse = { id: String(e.toolUseId), name: String(e.toolName), content: String(e.content ?? '{}') };
        return;
      case 'contentEnd': {
        if (e.stopReason === 'INTERRUPTED') return this.interrupt(String(e.contentId ?? ''));
        if (e.type === 'TOOL' && this.toolUse) return this.answerTool(this.toolUse);
        if (e.type === 'AUDIO' && e.stopReason === 'END_TURN') events.turnEnd();
        // The final transcript of what the assistant said follows its audio: the turn is complete after it.
        if (e.type === 'TEXT' && this.role === 'ASSISTANT' && this.stage === 'FINAL' && e.stopReason === 'END_TURN') this.sink.turnBoundary();
        return;
      }
    }
  }

  private interrupt(contentId: string): void {
    if (contentId && this.interruptedContent === contentId) return; // both signals of one interruption
    this.interruptedContent = contentId;
    this.sink.events.interrupted();
  }

  private async answerTool(tool: { id: string; name: string; content: string }): Promise<void> {
    this.toolUse = undefined;
    let result: string;
    try {
      const query = (JSON.parse(tool.content) as { query?: string }).query ?? '';
      result = tool.name === KNOWLEDGE_TOOL && this.options.retrieve ? await this.options.retrieve(query) : 'Unknown tool.';
    } catch (err) {
      this.sink.log.warn('speech_tool_failed', { tool: tool.name, error: err as Error });
      result = 'The knowledge base could not be searched.';
    }
    const contentName = randomUUID();
    this.send({
      contentStart: {
        promptName: this.promptName,
        contentName,
        interactive: false,
        type: 'TOOL',
        role: 'TOOL',
        toolResultInputConfiguration: { toolUseId: tool.id, type: 'TEXT', textInputConfiguration: { mediaType: 'text/plain' } },
      },
    });
    this.send({ toolResult: { promptName: this.promptName, contentName, content: JSON.stringify({ result }) } });
    this.send({ contentEnd: { promptName: this.promptName, contentName } });
  }

  /** contentEnd (audio), promptEnd, sessionEnd: the documented order, also after an error. */
  async close(timeoutMs = 5000): Promise<void> {
    if (this.closing) return this.ended;
    this.closing = true;
    this.send({ contentEnd: { promptName: this.promptName, contentName: this.audioContent } });
    this.send({ promptEnd: { promptName: this.promptName } });
    this.send({ sessionEnd: {} });
    this.outbox.end();
    await Promise.race([this.ended, new Promise((resolve) => setTimeout(resolve, timeoutMs).unref())]);
  }
}

export class NovaSonicProvider implements SpeechProvider {
  readonly name = 'bedrock';
  constructor(private readonly options: NovaSonicOptions) {}

  async open(session: { sessionId: string; userId: string; log: Logger }, events: ProviderEvents): Promise<ProviderSession> {
    const renewAfterMs = this.options.renewAfterMs ?? 7 * 60_000;
    const renewDeadlineMs = this.options.renewDeadlineMs ?? 7.5 * 60_000;
    const history: Array<{ role: Role; text: string }> = [];
    /** User audio since the last turn boundary (at most a few seconds), replayed into the next stream. */
    let recent: Buffer[] = [];
    let recentBytes = 0;
    const replayBytes = (SPEECH_INPUT_SAMPLE_RATE * 2 * AUDIO_REPLAY_MS) / 1000;
    let current: Stream;
    let renewing: Promise<void> | undefined;
    let pending: Buffer[] = [];
    let closed = false;
    let timers: NodeJS.Timeout[] = [];
    const retired = new Set<Promise<void>>();

    const open = async (turns: Array<{ role: Role; text: string }>): Promise<Stream> => {
      const stream: Stream = new Stream(this.options, {
        events: {
          ...events,
          // Only the live stream speaks to the browser.
          audio: (pcm) => stream === current && events.audio(pcm),
          transcript: (...args) => stream === current && events.transcript(...args),
          interrupted: () => stream === current && events.interrupted(),
          turnEnd: () => stream === current && events.turnEnd(),
          error: (err) => stream === current && events.error(err),
        },
        final: (role, text) => stream === current && history.push({ role, text }),
        turnBoundary: () => {
          if (stream !== current) return;
          recent = [];
          recentBytes = 0;
          if (due) void renew('turn boundary');
        },
        log: session.log,
      });
      await stream.start(turns);
      return stream;
    };

    let due = false;
    const schedule = () => {
      timers.forEach(clearTimeout);
      due = false;
      timers = [
        setTimeout(() => (due = true), renewAfterMs),
        setTimeout(() => void renew('deadline'), renewDeadlineMs),
      ];
      for (const t of timers) t.unref();
    };

    const renew = (reason: string): Promise<void> => {
      if (renewing || closed) return renewing ?? Promise.resolve();
      renewing = (async () => {
        const previous = current;
        // What the user said since the last turn boundary goes to the new stream, then what arrives meanwhile.
        const carried = recent;
        session.log.info('speech_stream_renewing', { sessionId: session.sessionId, reason, historyTurns: history.length });
        try {
          const next = await open(trimHistory(history));
          current = next;
          for (const pcm of [...carried, ...pending]) next.audio(pcm);
          recent = [...carried, ...pending];
          recentBytes = recent.reduce((n, b) => n + b.length, 0);
          pending = [];
          schedule();
        } catch (err) {
          events.error(err as Error);
        } finally {
          renewing = undefined;
        }
        // The old stream closes in the background; new audio already flows to the new one.
        const retiring = previous.close();
        retired.add(retiring);
        void retiring.finally(() => retired.delete(retiring));
      })();
      return renewing;
    };

    current = await open([]);
    schedule();

    return {
      audio(pcm: Buffer) {
        if (closed) return;
        if (renewing) {
          pending.push(pcm);
          return;
        }
        recent.push(pcm);
        recentBytes += pcm.length;
        while (recentBytes > replayBytes && recent.length > 1) recentBytes -= recent.shift()!.length;
        current.audio(pcm);
      },
      async close() {
        if (closed) return;
        closed = true;
        timers.forEach(clearTimeout);
        await renewing;
        await Promise.all([current.close(), ...retired]);
      },
    };
  }
}
