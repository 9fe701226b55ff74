import { useEffect, useRef, useState } from 'react';
import { SpeechClient } from '@gatehouse/client';
import type { SpeechEvent } from '../../protocol';
import type { Auth } from './auth';
import { Microphone, Player } from './audio';

type State = 'idle' | 'connecting' | 'listening' | 'stopping' | 'error';

interface Line {
  id: number;
  role: 'user' | 'assistant';
  text: string;
  final: boolean;
}

const CLOSE_REASONS: Record<number, string> = {
  1001: 'The speech service is restarting; start again.',
  1008: 'The speech service refused this session (signed out or expired).',
  1011: 'The speech model failed; start again.',
  1013: 'The speech service is busy; try again in a moment.',
};

/** Talk to the assistant: microphone -> 16 kHz PCM frames -> /ws/speech -> 24 kHz PCM played back, plus transcripts. */
export function Speech({ url, auth, tenant }: { url: string; auth: Auth; tenant?: string | undefined }) {
  const [state, setState] = useState<State>('idle');
  const [lines, setLines] = useState<Line[]>([]);
  const [error, setError] = useState<string>();
  const [stats, setStats] = useState({ sent: 0, received: 0 });
  const session = useRef<{ stop: () => Promise<void> }>(undefined);

  // Leaving the page (or signing out, which unmounts it) ends the conversation.
  useEffect(() => () => void session.current?.stop(), []);

  function transcript(event: Extract<SpeechEvent, { type: 'transcript' }>) {
    setLines((all) => {
      const last = all[all.length - 1];
      // Partial transcripts replace the role's running line until it is final.
      if (last && last.role === event.role && !last.final) return [...all.slice(0, -1), { ...last, text: event.text, final: event.final }];
      return [...all, { id: (last?.id ?? 0) + 1, role: event.role, text: event.text, final: event.final }].slice(-100);
    });
  }

  async function start() {
    setError(undefined);
    setState('connecting');
    setStats({ sent: 0, received: 0 });
    const credentials = auth.sockets(tenant);
    let token: string;
    try {
      token = await credentials.token();
    } catch (err) {
      setError((err as Error).message);
      return setState('error');
    }
    const context = new AudioContext();
    const player = new Player(context);
    const client = new SpeechClient({ url, token, socket: credentials.factory });
    let microphone: Microphone | undefined;
    let renewTimer: ReturnType<typeof setTimeout> | undefined;
    let ended = false;

    const end = async (message?: string) => {
      if (ended) return;
      ended = true;
      clearTimeout(renewTimer);
      microphone?.close();
      player.flush();
      await context.close().catch(() => undefined);
      session.current = undefined;
      if (message) setError(message);
      setState(message ? 'error' : 'idle');
    };
    // Token mode: hand the service a fresh access token a minute before the current one ends the session.
    const scheduleRenewal = (expiresAt: number) => {
      if (!credentials.renewToken) return;
      const renewToken = credentials.renewToken;
      clearTimeout(renewTimer);
      renewTimer = setTimeout(
        () => void renewToken().then((token) => client.refresh(token)).catch(() => undefined),
        Math.max(1_000, expiresAt * 1000 - Date.now() - 60_000),
      );
    };

    client.on('audio', (pcm) => {
      player.enqueue(pcm);
      setStats((s) => ({ ...s, received: s.received + pcm.byteLength }));
    });
    client.on('event', (event) => {
      if (event.type === 'transcript') transcript(event);
      else if (event.type === 'interrupted') player.flush();
      else if (event.type === 'ready' || event.type === 'refreshed') scheduleRenewal(event.expiresAt);
      else if (event.type === 'error') setError(event.message);
      else if (event.type === 'stopped') void end();
    });
    client.on('close', ({ code }) => void end(code === 1000 ? undefined : (CLOSE_REASONS[code] ?? `The speech connection closed (${code}).`)));

    session.current = {
      stop: async () => {
        setState('stopping');
        // Stop the microphone first, then let the service end the model stream and close.
        microphone?.close();
        try {
          client.stop();
        } catch {
          /* socket already gone */
        }
        client.close();
        await end();
      },
    };
    try {
      await client.connect();
      microphone = await Microphone.open(context, (frame) => {
        client.sendAudio(frame);
        setStats((s) => ({ ...s, sent: s.sent + frame.byteLength }));
      });
      client.start();
      setState('listening');
    } catch (err) {
      client.close();
      const name = (err as Error).name;
      await end(name === 'NotAllowedError' ? 'Microphone access was refused: allow it in the browser to talk.' : (err as Error).message);
    }
  }

  const busy = state === 'connecting' || state === 'stopping';
  return (
    <div className="speech">
      <h2>Speech</h2>
      <p className="muted">
        Talk to the assistant: your microphone streams to the speech service, which answers with voice and text.
      </p>
      <div className="row">
        {state === 'listening' ? (
          <button type="button" onClick={() => void session.current?.stop()}>Stop</button>
        ) : (
          <button type="button" onClick={() => void start()} disabled={busy}>
            {state === 'connecting' ? 'Starting…' : 'Start talking'}
          </button>
        )}
        <span className={`status status-speech-${state}`} role="status" aria-live="polite" data-state={state}>
          <span className="dot" aria-hidden="true" />
          {{ idle: 'Not listening', connecting: 'Connecting…', listening: 'Listening', stopping: 'Stopping…', error: 'Stopped' }[state]}
        </span>
        <span className="muted small" data-testid="speech-bytes">
          sent {Math.round(stats.sent / 1024)} KiB · received {Math.round(stats.received / 1024)} KiB
        </span>
      </div>
      {error && <p className="error" role="alert">{error}</p>}
      <ol className="transcript" aria-label="Transcript" aria-live="polite">
        {lines.map((line) => (
          <li key={line.id} className={`${line.role}${line.final ? '' : ' partial'}`}>
            <span className="sender">{line.role === 'user' ? 'You' : 'Assistant'}</span>
            <p className="text">{line.text}</p>
          </li>
        ))}
        {lines.length === 0 && <li className="empty">Transcripts appear here.</li>}
      </ol>
    </div>
  );
}
