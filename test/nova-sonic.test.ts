/**
 * The Nova Sonic provider against a stubbed Bedrock client (aws-sdk-client-mock): the exact events it sends, how it
 * relays a recorded Nova Sonic output sequence, errors, knowledge-base tool use, and the hand-over to a new stream
 * before the 8-minute limit.
 */
import { BedrockRuntimeClient, InvokeModelWithBidirectionalStreamCommand, type InvokeModelWithBidirectionalStreamInput } from '@aws-sdk/client-bedrock-runtime';
import { mockClient } from 'aws-sdk-client-mock';
import { KNOWLEDGE_TOOL, NovaSonicProvider, trimHistory, type NovaSonicOptions } from '../speech/providers/nova-sonic';
import type { ProviderEvents } from '../speech/provider';
import { memoryLogger } from './support/log';
import { waitUntil } from './support/system';

type Json = Record<string, any>;
const bedrock = mockClient(BedrockRuntimeClient);

/** One stubbed stream: what the provider sent, and a script of output events (or an error) to play back. */
interface Call {
  sent: Json[];
  ended: boolean;
}

const encode = (event: Json) => ({ chunk: { bytes: new TextEncoder().encode(JSON.stringify({ event })) } });

function stub(scripts: Array<(call: Call) => AsyncGenerator<unknown>>) {
  const calls: Call[] = [];
  bedrock.reset();
  bedrock.on(InvokeModelWithBidirectionalStreamCommand).callsFake(async (input: { modelId: string; body: AsyncIterable<InvokeModelWithBidirectionalStreamInput> }) => {
    const call: Call = { sent: [], ended: false };
    calls.push(call);
    void (async () => {
      for await (const part of input.body) call.sent.push(JSON.parse(new TextDecoder().decode(part.chunk!.bytes!)).event);
      call.ended = true;
    })();
    const script = scripts[calls.length - 1] ?? (async function* () {})();
    return { body: typeof script === 'function' ? script(call) : script };
  });
  return calls;
}

/** A stream that says nothing and ends when its input does. */
async function* until(call: Call) {
  await waitUntil(() => call.ended, 5000, 'the input stream to end');
  yield* [];
}

/** A recorded Nova Sonic turn: the user's transcript, a speculative and a final assistant text, audio, then a barge-in. */
const pcm1 = Buffer.from([1, 0, 2, 0]);
const pcm2 = Buffer.from([3, 0, 4, 0]);
const recordedTurn = [
  { completionStart: { sessionId: 's', promptName: 'p', completionId: 'c' } },
  { contentStart: { contentId: 'c1', type: 'TEXT', role: 'USER', additionalModelFields: '{"generationStage":"FINAL"}' } },
  { textOutput: { contentId: 'c1', role: 'USER', content: 'hello there' } },
  { contentEnd: { contentId: 'c1', type: 'TEXT', stopReason: 'END_TURN' } },
  { contentStart: { contentId: 'c2', type: 'TEXT', role: 'ASSISTANT', additionalModelFields: '{"generationStage":"SPECULATIVE"}' } },
  { textOutput: { contentId: 'c2', role: 'ASSISTANT', content: 'Hi! How can I help?' } },
  { contentEnd: { contentId: 'c2', type: 'TEXT', stopReason: 'PARTIAL_TURN' } },
  { contentStart: { contentId: 'c3', type: 'AUDIO', role: 'ASSISTANT', audioOutputConfiguration: { sampleRateHertz: 24000 } } },
  { audioOutput: { contentId: 'c3', content: pcm1.toString('base64') } },
  { audioOutput: { contentId: 'c3', content: pcm2.toString('base64') } },
  { contentEnd: { contentId: 'c3', type: 'AUDIO', stopReason: 'END_TURN' } },
  { contentStart: { contentId: 'c4', type: 'TEXT', role: 'ASSISTANT', additionalModelFields: '{"generationStage":"FINAL"}' } },
  { textOutput: { contentId: 'c4', role: 'ASSISTANT', content: 'Hi! How can I help?' } },
  { contentEnd: { contentId: 'c4', type: 'TEXT', stopReason: 'END_TURN' } },
  { contentStart: { contentId: 'c5', type: 'TEXT', role: 'ASSISTANT', additionalModelFields: '{"generationStage":"SPECULATIVE"}' } },
  { textOutput: { contentId: 'c5', role: 'ASSISTANT', content: '{ "interrupted" : true }' } },
  { contentEnd: { contentId: 'c5', type: 'TEXT', stopReason: 'INTERRUPTED' } },
  { usageEvent: { totalTokens: 42 } },
  { completionEnd: { stopReason: 'END_TURN' } },
];

function recorder() {
  const got: Array<[string, ...unknown[]]> = [];
  const events: ProviderEvents = {
    audio: (pcm) => got.push(['audio', [...pcm]]),
    transcript: (role, text, final) => got.push(['transcript', role, text, final]),
    interrupted: () => got.push(['interrupted']),
    turnEnd: () => got.push(['turnEnd']),
    error: (err) => got.push(['error', err.name, err.message]),
  };
  return { got, events };
}

const options = (overrides: Partial<NovaSonicOptions> = {}): NovaSonicOptions => ({
  client: new BedrockRuntimeClient({ region: 'us-east-1', credentials: { accessKeyId: 'x', secretAccessKey: 'x' } }),
  modelId: 'amazon.nova-2-sonic-v1:0',
  voiceId: 'tiffany',
  systemPrompt: 'Be brief.',
  ...overrides,
});
const session = () => ({ sessionId: 'sess-1', userId: 'user-1', log: memoryLogger().log });

describe('Nova Sonic provider', () => {
  it('sends the documented events in the documented order, and closes content, prompt, session', async () => {
    const calls = stub([until]);
    const provider = new NovaSonicProvider(options());
    const s = await provider.open(session(), recorder().events);
    s.audio(Buffer.from([1, 2, 3, 4]));
    s.audio(Buffer.from([5, 6]));
    await s.close();
    await waitUntil(() => calls[0].ended, 2000, 'the stream to end');

    expect(bedrock.commandCalls(InvokeModelWithBidirectionalStreamCommand)[0].args[0].input.modelId).toBe('amazon.nova-2-sonic-v1:0');
    const sent = calls[0].sent;
    const promptName = sent[1].promptStart.promptName;
    const [system, audio] = [sent[2].contentStart.contentName, sent[5].contentStart.contentName];
    expect(sent).toEqual([
      {
        sessionStart: {
          inferenceConfiguration: { maxTokens: 1024, topP: 0.9, temperature: 0.7 },
          turnDetectionConfiguration: { endpointingSensitivity: 'MEDIUM' },
        },
      },
      {
        promptStart: {
          promptName,
          textOutputConfiguration: { mediaType: 'text/plain' },
          audioOutputConfiguration: {
            mediaType: 'audio/lpcm',
            sampleRateHertz: 24000,
            sampleSizeBits: 16,
            channelCount: 1,
            voiceId: 'tiffany',
            encoding: 'base64',
            audioType: 'SPEECH',
          },
        },
      },
      { contentStart: { promptName, contentName: system, type: 'TEXT', interactive: false, role: 'SYSTEM', textInputConfiguration: { mediaType: 'text/plain' } } },
      { textInput: { promptName, contentName: system, content: 'Be brief.' } },
      { contentEnd: { promptName, contentName: system } },
      {
        contentStart: {
          promptName,
          contentName: audio,
          type: 'AUDIO',
          interactive: true,
          role: 'USER',
          audioInputConfiguration: { mediaType: 'audio/lpcm', sampleRateHertz: 16000, sampleSizeBits: 16, channelCount: 1, audioType: 'SPEECH', encoding: 'base64' },
        },
      },
      { audioInput: { promptName, contentName: audio, content: Buffer.from([1, 2, 3, 4]).toString('base64') } },
      { audioInput: { promptName, contentName: audio, content: Buffer.from([5, 6]).toString('base64') } },
      { contentEnd: { promptName, contentName: audio } },
      { promptEnd: { promptName } },
      { sessionEnd: {} },
    ]);
  });

  it('relays a recorded turn: transcripts (speculative and final), audio, turn end, and one interruption', async () => {
    stub([
      async function* (call) {
        for (const event of recordedTurn) yield encode(event);
        yield* until(call);
      },
    ]);
    const { got, events } = recorder();
    const s = await new NovaSonicProvider(options()).open(session(), events);
    await waitUntil(() => got.some(([t]) => t === 'interrupted'), 2000, 'the interruption');
    await s.close();
    expect(got).toEqual([
      ['transcript', 'user', 'hello there', true],
      ['transcript', 'assistant', 'Hi! How can I help?', false],
      ['audio', [...pcm1]],
      ['audio', [...pcm2]],
      ['turnEnd'],
      ['transcript', 'assistant', 'Hi! How can I help?', true],
      ['interrupted'],
    ]);
  });

  it('ends the session on a stream error (throttling) and still closes in order', async () => {
    const calls = stub([
      async function* () {
        yield encode({ completionStart: {} });
        yield { throttlingException: { message: 'Too many requests' } };
      },
    ]);
    const { got, events } = recorder();
    const s = await new NovaSonicProvider(options()).open(session(), events);
    await waitUntil(() => got.length > 0, 2000, 'the error');
    expect(got).toEqual([['error', 'throttlingException', 'Too many requests']]);
    await s.close();
    await waitUntil(() => calls[0].ended, 2000, 'the input to end');
    expect(calls[0].sent.slice(-3).map((e) => Object.keys(e)[0])).toEqual(['contentEnd', 'promptEnd', 'sessionEnd']);
  });

  it('answers the knowledge-base tool with Retrieve results', async () => {
    const queries: string[] = [];
    const calls = stub([
      async function* (call) {
        yield encode({ contentStart: { contentId: 't1', type: 'TOOL', role: 'TOOL' } });
        yield encode({ toolUse: { toolName: KNOWLEDGE_TOOL, toolUseId: 'use-1', content: '{"query":"opening hours"}' } });
        yield encode({ contentEnd: { contentId: 't1', type: 'TOOL', stopReason: 'TOOL_USE' } });
        yield* until(call);
      },
    ]);
    const s = await new NovaSonicProvider(options({ retrieve: async (q) => (queries.push(q), 'Open 9 to 5.') })).open(session(), recorder().events);
    await waitUntil(() => calls[0].sent.some((e) => e.toolResult), 2000, 'the tool result');
    expect(queries).toEqual(['opening hours']);
    expect(calls[0].sent[1].promptStart.toolConfiguration.tools[0].toolSpec.name).toBe(KNOWLEDGE_TOOL);
    const i = calls[0].sent.findIndex((e) => e.toolResult);
    expect(calls[0].sent[i - 1].contentStart).toMatchObject({ type: 'TOOL', role: 'TOOL', toolResultInputConfiguration: { toolUseId: 'use-1' } });
    expect(JSON.parse(calls[0].sent[i].toolResult.content)).toEqual({ result: 'Open 9 to 5.' });
    expect(calls[0].sent[i + 1].contentEnd).toBeDefined();
    await s.close();
  });

  it('hands the conversation to a new stream at the first turn boundary after the renewal time', async () => {
    const calls = stub([
      async function* (call) {
        await new Promise((r) => setTimeout(r, 80)); // past renewAfterMs
        for (const event of recordedTurn.slice(0, 14)) yield encode(event); // up to the final assistant text
        yield* until(call);
      },
      until,
    ]);
    const { got, events } = recorder();
    const s = await new NovaSonicProvider(options({ renewAfterMs: 50, renewDeadlineMs: 60_000 })).open(session(), events);
    s.audio(Buffer.from([9, 9])); // part of the turn the model answered: not replayed
    await waitUntil(() => calls.length === 2 && calls[0].ended, 3000, 'the hand-over');
    s.audio(Buffer.from([7, 7])); // after: goes to the new stream only
    await waitUntil(() => calls[1].sent.some((e) => e.audioInput?.content === Buffer.from([7, 7]).toString('base64')), 2000, 'live audio on the new stream');

    const second = calls[1].sent;
    const texts = second.filter((e) => e.textInput).map((e) => e.textInput.content);
    const roles = second.filter((e) => e.contentStart?.type === 'TEXT').map((e) => e.contentStart.role);
    // The speculative assistant text is not history; the final one is.
    expect(roles).toEqual(['SYSTEM', 'USER', 'ASSISTANT']);
    expect(texts).toEqual(['Be brief.', 'hello there', 'Hi! How can I help?']);
    expect(second.filter((e) => e.audioInput).map((e) => e.audioInput.content)).toEqual([Buffer.from([7, 7]).toString('base64')]);
    expect(calls[0].sent.slice(-3).map((e) => Object.keys(e)[0])).toEqual(['contentEnd', 'promptEnd', 'sessionEnd']);
    expect(got.filter(([t]) => t === 'error')).toEqual([]);
    await s.close();
  });

  it('renews at the deadline when the user stays silent, carrying the unanswered audio over', async () => {
    const calls = stub([until, until]);
    const s = await new NovaSonicProvider(options({ renewAfterMs: 20, renewDeadlineMs: 80 })).open(session(), recorder().events);
    s.audio(Buffer.from([5, 5]));
    await waitUntil(() => calls.length === 2, 2000, 'the deadline renewal');
    await waitUntil(() => calls[1].sent.some((e) => e.audioInput), 2000, 'carried audio');
    expect(calls[1].sent.filter((e) => e.audioInput).map((e) => e.audioInput.content)).toEqual([Buffer.from([5, 5]).toString('base64')]);
    await s.close();
  });
});

describe('trimHistory', () => {
  it('merges consecutive turns of a role, starts with USER and keeps within the byte limit', () => {
    expect(
      trimHistory(
        [
          { role: 'ASSISTANT', text: 'welcome' },
          { role: 'USER', text: 'a' },
          { role: 'USER', text: 'b' },
          { role: 'ASSISTANT', text: 'c' },
        ],
        100,
      ),
    ).toEqual([
      { role: 'USER', text: 'a b' },
      { role: 'ASSISTANT', text: 'c' },
    ]);
    const long = Array.from({ length: 10 }, (_, i) => ({ role: (i % 2 ? 'ASSISTANT' : 'USER') as 'USER' | 'ASSISTANT', text: 'x'.repeat(30) }));
    const trimmed = trimHistory(long, 100);
    expect(trimmed[0].role).toBe('USER');
    expect(trimmed.reduce((n, t) => n + t.text.length, 0)).toBeLessThanOrEqual(100);
  });
});
